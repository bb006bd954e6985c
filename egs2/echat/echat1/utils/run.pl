#!/usr/bin/env perl
# Run a command locally, optionally as an array job, logging to a file (Kaldi's run.pl interface).
#
#   utils/run.pl [--max-jobs-run N] [--gpu N] [--mem X] JOB=1:4 exp/log/foo.JOB.log cmd args...
#   utils/run.pl exp/log/foo.log cmd args...
# "JOB" in the log name and the command is replaced by the job index. Exit status is non-zero if
# any job failed; failed logs are named on stderr. Options other than --max-jobs-run are accepted
# and ignored (they matter to cluster back-ends). Written for this recipe: the ESPnet wheel does
# not ship Kaldi's utils/.
use strict;
use warnings;
use File::Basename;
use File::Path qw(make_path);
use POSIX ":sys_wait_h";

my $max_jobs = 32;
my @requests;  # cluster options (--gpu, --mem, ...): logged, not enforced locally
while (@ARGV && $ARGV[0] =~ /^--/) {
  my $opt = shift @ARGV;
  my $val = shift @ARGV;
  die "run.pl: option $opt needs a value\n" unless defined $val;
  if ($opt eq "--max-jobs-run") { $max_jobs = $val; } else { push @requests, "$opt $val"; }
}
my ($jobvar, $start, $end) = ("", 1, 1);
if (@ARGV && $ARGV[0] =~ /^([\w_]+)=(\d+):(\d+)$/) {
  ($jobvar, $start, $end) = ($1, $2, $3);
  shift @ARGV;
}
die "usage: run.pl [options] [JOB=1:N] log-file command...\n" if @ARGV < 2;
my $logfile = shift @ARGV;
my $cmd = join(" ", map { my $a = $_; ($a =~ /^[\w\/\.\-\+=:,@%]+$/) ? $a : "'" . ($a =~ s/'/'\\''/gr) . "'" } @ARGV);

my %running;
my @failed;
sub reap {
  my ($block) = @_;
  while (1) {
    my $pid = waitpid(-1, $block ? 0 : WNOHANG);
    last if $pid <= 0;
    if ($? != 0) { push @failed, $running{$pid}; }
    delete $running{$pid};
    last if $block;
  }
}
for my $j ($start .. $end) {
  while (scalar(keys %running) >= $max_jobs) { reap(1); }
  my $log = $logfile; my $c = $cmd;
  if ($jobvar ne "") { $log =~ s/\b$jobvar\b/$j/g; $c =~ s/\b$jobvar\b/$j/g; }
  make_path(dirname($log));
  my $pid = fork();
  die "run.pl: fork failed\n" unless defined $pid;
  if ($pid == 0) {
    open(my $fh, ">", $log) or die "run.pl: cannot write $log\n";
    print $fh "# $c\n";
    print $fh "# Requested: @requests\n" if @requests;
    print $fh "# Started at " . localtime() . "\n";
    close($fh);
    my $rc = system("bash", "-c", "( $c ) >> '$log' 2>&1");
    $rc = $rc >> 8;
    open($fh, ">>", $log); print $fh "# Accounting: status=$rc\n# Ended (code $rc) at " . localtime() . "\n"; close($fh);
    exit($rc == 0 ? 0 : 1);
  }
  $running{$pid} = $log;
}
reap(1) while scalar(keys %running) > 0;
if (@failed) {
  print STDERR "run.pl: " . scalar(@failed) . " / " . ($end - $start + 1) . " jobs failed, see " . join(" ", sort @failed) . "\n";
  exit(1);
}
exit(0);

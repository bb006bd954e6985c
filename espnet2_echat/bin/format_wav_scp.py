"""Turn the audio of a ``wav.scp`` into 16 kHz mono wav files (ESPnet's ``format_wav_scp``).

``python -m espnet2_echat.bin.format_wav_scp [--fs 16000] [--segments SEG] SCP OUT_DIR``
writes ``OUT_DIR/wav.scp``, ``OUT_DIR/utt2num_samples``, ``OUT_DIR/dropped`` (``uttid
reason`` of each entry that could not be read) and the wavs under ``OUT_DIR/data/``.
``--jobs_file FILE`` does the same for each line ``SCP OUT_DIR [SEGMENTS]`` of FILE (a line
``HISTORY OUT_DIR history`` formats the past-turn audio of a ``history`` file into
``OUT_DIR/history``): the
recipe's stage 2 gives each of its ``--nj`` jobs (run through the job runner) one such
file holding its share of every data dir. Exit status 0 even when entries were dropped
(they are listed); 1 when the input itself is malformed.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_echat.data.datadir import DataDirError
from espnet2_echat.data.format_audio import format_history, format_wav_scp
from espnet2_echat.progress import Tally


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scp", type=Path, nargs="?", help="input wav.scp (paths, ark or pipes)")
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--jobs_file", type=Path, default=None, help="lines SCP OUT_DIR [SEGMENTS]")
    parser.add_argument("--fs", type=int, default=16000, help="output sample rate")
    parser.add_argument("--segments", type=Path, default=None, help="Kaldi segments file")
    parser.add_argument("--progress_every", type=int, default=100, help="log every N entries")
    parser.add_argument("--log_level", default="INFO", help="WARNING: no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Format one scp; return the exit status."""
    parser = get_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    if args.jobs_file is not None:
        jobs = [line.split() for line in args.jobs_file.read_text().splitlines() if line.strip()]
    elif args.scp is not None and args.out_dir is not None:
        jobs = [[str(args.scp), str(args.out_dir)] + ([str(args.segments)] if args.segments else [])]
    else:
        parser.error("give SCP OUT_DIR or --jobs_file")
    tally = Tally()
    for job in jobs:
        if len(job) not in (2, 3):
            print(f"format_wav_scp: {args.jobs_file}: expected 'SCP OUT_DIR [SEGMENTS]', got {job}",
                  file=sys.stderr)
            return 1
        scp, out_dir, segments = Path(job[0]), Path(job[1]), (Path(job[2]) if len(job) > 2 else None)
        try:
            if str(segments) == "history":
                n, dropped = format_history(scp, out_dir, args.fs, tally)
            else:
                n, dropped = format_wav_scp(
                    scp, out_dir, args.fs, segments, args.progress_every, tally
                )
        except (OSError, ValueError, DataDirError) as e:
            print(f"format_wav_scp: {e}", file=sys.stderr)
            return 1
        print(f"{scp}: {n} written, {len(dropped)} dropped")
    print(tally.summary("format_wav_scp"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Corpus roots for --corpus full (local/*.py read these; empty = not available).
# The default --corpus mini needs none of them: the recipe makes its own corpus.
LIBRISPEECH=${LIBRISPEECH:-}
AISHELL=${AISHELL:-}
MELD=${MELD:-}
VOCALSOUND=${VOCALSOUND:-}
COMMONVOICE=${COMMONVOICE:-}
LIBRITTS=${LIBRITTS:-}
TEXT_DIALOGUE=${TEXT_DIALOGUE:-}
VOICEBENCH=${VOICEBENCH:-}
SEEDTTS_EVAL=${SEEDTTS_EVAL:-}
ECHAT=${ECHAT:-}

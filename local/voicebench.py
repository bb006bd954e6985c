#!/usr/bin/env python3
"""VoiceBench -> test data dirs (spoken instructions, task ``<S2TCHAT>``).

Layout: the Hugging Face dataset ``hlt-lab/voicebench`` as downloaded (e.g.
``huggingface-cli download hlt-lab/voicebench --repo-type dataset --local-dir $VOICEBENCH``):
``$VOICEBENCH/<subset>/<split>-NNNNN-of-NNNNN.parquet`` (also found one folder deeper,
e.g. under ``data/``) with columns ``audio`` (``{bytes, path}``), ``prompt`` (the spoken
text) and, for some subsets, ``reference`` or ``output``. Writes
``<out_dir>/voicebench_<subset>[_<split>]`` (test sets) with 16 kHz wavs under
``<that dir>/wav``; ``text`` is the prompt, ``reply`` the reference answer when there is
one. Subsets without reference answers (alpacaeval, commoneval, ifeval, advbench, ...)
are kept: they are scored without a reference (the dirs validate without targets).
"""

import io
from pathlib import Path
from typing import Dict, List

from prep_common import Utts, get_parser, one_line, parse_args, write_and_check

from espnet2_echat.data.audio import load_audio, write_pcm16

DB_VAR = "VOICEBENCH"


def _read_parquet(path: Path) -> List[Dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError("reading VoiceBench parquet files needs pyarrow") from e
    return pq.read_table(path).to_pylist()


def prepare_file(path: Path, data_dir: Path, spk: str, tag: str) -> Utts:
    """One parquet file -> utterances (wavs written under ``data_dir/wav``)."""
    wav_dir = data_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    utts: Utts = {}
    for i, row in enumerate(_read_parquet(path)):
        audio = row["audio"]
        wav = load_audio(io.BytesIO(audio["bytes"]), 16000)
        utt = f"{spk}-{tag}{i:05d}"
        out = wav_dir / f"{utt}.wav"
        write_pcm16(out, wav, 16000)
        rec = {"task": "<S2TCHAT>", "wav.scp": str(out.resolve()), "utt2spk": spk}
        if row.get("prompt"):
            rec["text"] = one_line(str(row["prompt"]))
        for key in ("reference", "output"):
            if row.get(key):
                rec["reply"] = one_line(str(row[key]))
                break
        utts[utt] = rec
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--subsets", nargs="+", default=None, help="default: every subset folder")
    args = parse_args(parser, DB_VAR, argv)
    subset_dirs = {
        p.parent.name: p.parent
        for p in sorted(args.db_root.glob("*/*.parquet")) + sorted(args.db_root.glob("*/*/*.parquet"))
        if not any(part.startswith(".") for part in p.relative_to(args.db_root).parts)
    }
    if not subset_dirs:
        raise FileNotFoundError(f"{args.db_root}: no <subset>/<split>-*.parquet files")
    for subset in args.subsets or sorted(subset_dirs):
        if subset not in subset_dirs:
            raise FileNotFoundError(f"{args.db_root}: no parquet files for subset {subset!r}")
        files = sorted(subset_dirs[subset].glob("*.parquet"))
        splits = sorted({f.name.split("-")[0] for f in files})
        for split in splits:
            name = f"voicebench_{subset}" + ("" if split == "test" else f"_{split}")
            name = name.replace("-", "_")
            data_dir = args.out_dir / name
            utts: Utts = {}
            for i, f in enumerate(f for f in files if f.name.split("-")[0] == split):
                utts.update(prepare_file(f, data_dir, name, f"{i:02d}"))
            write_and_check(data_dir, utts, "test")


if __name__ == "__main__":
    main()

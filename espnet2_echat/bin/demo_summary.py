"""End of `make demo`: print RESULTS.md, load the packed model with
``Speech2Response.from_pretrained`` and answer a test utterance, and list the plots."""

import argparse
import logging
from pathlib import Path

import soundfile as sf


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe_dir", default="egs2/echat/echat1")
    parser.add_argument("--think", default="tag")
    parser.add_argument(
        "--exp_dir", default="exp_small_real", help="the recipe's --expdir (tiny: exp)"
    )
    parser.add_argument(
        "--dump_dir", default="dump_small_real", help="the recipe's --dumpdir (tiny: dump)"
    )
    parser.add_argument(
        "--results", default="RESULTS.md",
        help="RESULTS.md, relative to the recipe dir (tiny: exp/echat_stage3_empathy_tag/RESULTS.md)",
    )
    return parser


def summarize(
    recipe_dir: str,
    think: str,
    exp_dir: str = "exp_small_real",
    dump_dir: str = "dump_small_real",
    results: str = "RESULTS.md",
) -> None:
    """Print RESULTS.md, answer one test utterance with the packed model, list the plots."""
    from espnet2_echat.inference.speech2response import Speech2Response

    root = Path(recipe_dir)
    final = root / exp_dir / f"echat_stage3_empathy_{think}"
    print((root / results).read_text(encoding="utf-8"))
    packed = sorted(final.glob("*.zip"))
    if not packed:
        raise FileNotFoundError(f"no packed model in {final}; run stage 11 of the recipe")
    s2r = Speech2Response.from_pretrained(str(packed[0]))
    test = root / dump_dir / f"test_s2s_{think}_think" / "wav.scp"
    utt, path = test.read_text(encoding="utf-8").splitlines()[0].split(maxsplit=1)
    path = path if Path(path).is_absolute() else str(root / path)
    wav, fs = sf.read(path)
    out = s2r(speech=wav, fs=fs, task="s2s", think=think, do_sample=False,
              max_new_tokens=24, max_new_speech_tokens=60)
    print(f"\nSpeech2Response.from_pretrained({packed[0]}) answers {utt}:")
    print(f"  think: {out.think}\n  reply: {out.text}\n  speech tokens: {len(out.speech_token)}")
    if out.wav is not None:
        reply = final / "demo_reply.wav"
        sf.write(reply, out.wav, out.sample_rate)
        print(f"  reply wav: {reply}")
    wavs = sorted((final).glob("decode_*/test_s2s*/wavs/*.wav")) or sorted(final.rglob("*.wav"))
    if wavs:
        print(f"a decoded reply wav: {wavs[0]}")
    print("training curves:")
    for exp in sorted((root / exp_dir).glob("*/images")):
        for png in ("loss.png", "acc.png"):
            if (exp / png).exists():
                print(f"  {exp / png}")


def main(cmd=None):
    logging.basicConfig(level=logging.WARNING)
    args = get_parser().parse_args(cmd)
    summarize(args.recipe_dir, args.think, args.exp_dir, args.dump_dir, args.results)


if __name__ == "__main__":
    main()

"""Publish a packed EChat model on the Hugging Face hub (``--dry_run true`` builds all but the push)."""

import argparse
import logging

from espnet2.utils.types import str2bool

from espnet2_echat.zoo import upload_to_hf


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packed", required=True, help="the zip of pack_echat")
    parser.add_argument("--repo", required=True, help="HF repo id, e.g. user/echat_tag_think")
    parser.add_argument("--out_dir", required=True, help="where the repo folder is built")
    parser.add_argument("--dry_run", type=str2bool, default=True)
    return parser


def main(cmd=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    a = get_parser().parse_args(cmd)
    upload_to_hf(a.packed, a.repo, a.out_dir, a.dry_run)


if __name__ == "__main__":
    main()

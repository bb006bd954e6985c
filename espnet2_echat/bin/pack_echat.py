"""Pack an EChat model (and its token2wav) in ESPnet's model zoo format."""

import argparse
import logging

from espnet2_echat.zoo import pack_model


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--token2wav_train_config", default=None)
    parser.add_argument("--token2wav_model_file", default=None)
    parser.add_argument("--results", default=None, help="RESULTS.md to include")
    parser.add_argument("--option", action="append", default=[], help="extra file or dir")
    parser.add_argument("--outpath", required=True, help="e.g. exp/model.zip")
    return parser


def main(cmd=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    a = get_parser().parse_args(cmd)
    pack_model(a.train_config, a.model_file, a.outpath, a.token2wav_train_config,
               a.token2wav_model_file, a.results, a.option)


if __name__ == "__main__":
    main()

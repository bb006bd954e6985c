"""Train the OSUM-EChat speech LLM with ESPnet's trainer (`python -m espnet2_echat.bin.echat_train`)."""

from espnet2_echat.tasks.echat import EChatTask


def get_parser():
    return EChatTask.get_parser()


def main(cmd=None):
    EChatTask.main(cmd=cmd)


if __name__ == "__main__":
    main()

"""Train the OSUM-EChat speech LLM with ESPnet's trainer.

``python -m espnet2_echat.bin.echat_train``: the ESPnet task CLI of ``EChatTask``.

``--help`` alone prints the parser's stored text (``espnet2_echat.task_help``) without
importing ESPnet's trainer; everything else goes to ``EChatTask.main``.
"""

from espnet2_echat.task_help import answer_help


def get_parser():
    """EChatTask's parser (imports ESPnet's trainer, torch and transformers)."""
    from espnet2_echat.tasks.echat import EChatTask

    return EChatTask.get_parser()


def main(cmd=None):
    answer_help("echat_train", cmd)
    from espnet2_echat.tasks.echat import EChatTask

    EChatTask.main(cmd=cmd)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train token2wav (ESPnet trainer): the flow (``train_part: flow``), HiFT with CosyVoice's
GAN losses (``hift``) or both (``both``).

    python -m espnet2_echat.bin.token2wav_train --config conf/token2wav/train_tiny.yaml \
        --train_data_path_and_name_and_type data/train/wav.scp,speech,sound \
        --train_data_path_and_name_and_type data/train/speech_token,speech_token,text_int \
        --valid_data_path_and_name_and_type ... --train_shape_file ... --output_dir exp/t2w

Fine-tune converted CosyVoice weights with ``--init_param exp/cosyvoice/model.pth``.
"""

from typing import List, Optional

from espnet2_echat.task_help import answer_help


def main(cmd: Optional[List[str]] = None) -> None:
    """Entry point: pick the task for ``train_part`` and run ESPnet's ``AbsTask.main``.

    ``--help`` alone prints the stored text of ``Token2WavTask``'s parser
    (``espnet2_echat.task_help``) without importing ESPnet's trainer.
    """
    answer_help("token2wav_train", cmd)
    from espnet2_echat.tasks.token2wav import token2wav_task_for

    token2wav_task_for(cmd).main(cmd=cmd)


if __name__ == "__main__":
    main()

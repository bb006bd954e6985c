"""Merge a LoRA fine-tune into the base weights (`python -m espnet2_echat.bin.echat_merge_lora`)."""

from espnet2_echat.train.lora import get_parser, merge_lora_model_file


def main(cmd=None):
    args = get_parser().parse_args(cmd)
    config, model = merge_lora_model_file(args.config, args.model_file, args.out_dir)
    print(f"wrote {config} and {model}")


if __name__ == "__main__":
    main()

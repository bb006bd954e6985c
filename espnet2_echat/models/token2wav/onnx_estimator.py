"""The flow's velocity estimator run by ONNX Runtime (CPU), as CosyVoice deploys it.

``export_estimator`` writes the estimator to ONNX with ``torch.onnx.export`` (the TorchScript
exporter, opset 18, a dynamic time axis); :class:`OnnxEstimator` is a drop-in module for
``ConditionalCFM.estimator`` that runs that graph with ``onnxruntime``. The graph is exported
for unpadded input (batch-1 synthesis: the CFG pair of cond/uncond rows, all frames valid),
where the attention takes no key bias; a padded mask is refused rather than silently
ignored. Agreement with the torch estimator is float32 round-off (tested;
``benchmarks/token2wav_rtf.md`` gives the measured maximum mel error and the speed).
"""

import tempfile
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

INPUT_NAMES = ("x", "mask", "mu", "t", "spks", "cond")


def export_estimator(estimator: torch.nn.Module, path: Union[str, Path]) -> Path:
    """Export ``estimator`` (a float32 ``ConditionalDecoder``) to ONNX at ``path``."""
    channels = estimator.out_channels
    frames = 64
    example = (
        torch.zeros(2, channels, frames),
        torch.ones(2, 1, frames),
        torch.zeros(2, channels, frames),
        torch.full((2,), 0.5),
        torch.zeros(2, channels),
        torch.zeros(2, channels, frames),
    )
    time_axis = {2: "T"}
    path = Path(path)
    with torch.no_grad():
        torch.onnx.export(
            estimator,
            example,
            str(path),
            dynamo=False,
            opset_version=18,
            input_names=list(INPUT_NAMES),
            output_names=["v"],
            dynamic_axes={
                "x": time_axis,
                "mask": time_axis,
                "mu": time_axis,
                "cond": time_axis,
                "v": time_axis,
            },
        )
    return path


class OnnxEstimator(torch.nn.Module):
    """``ConditionalDecoder.forward`` on ONNX Runtime's CPU provider.

    Args:
        estimator: The torch estimator to export (its weights are copied into the graph).
        num_threads: ONNX Runtime intra-op threads (default: torch's current number).
        onnx_path: Where to write the graph (default: a temporary file, removed after
            the session has loaded it).
    """

    def __init__(
        self,
        estimator: torch.nn.Module,
        num_threads: Optional[int] = None,
        onnx_path: Optional[Union[str, Path]] = None,
    ):
        import onnxruntime

        super().__init__()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = (
            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = export_estimator(estimator, onnx_path or Path(tmp) / "estimator.onnx")
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        self.out_channels = estimator.out_channels

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        """Velocity (B, 80, T) as float32 on the input's device (CPU)."""
        if not bool(mask.all()):
            raise ValueError(
                "the ONNX estimator is exported for unpadded input (batch-1 synthesis); "
                "use the torch estimator for padded batches"
            )
        inputs = (x, mask, mu, t, spks, cond)
        feed = {
            name: np.ascontiguousarray(value.detach().float().cpu().numpy())
            for name, value in zip(INPUT_NAMES, inputs)
        }
        (v,) = self.session.run(None, feed)
        return torch.from_numpy(v).to(x.device)

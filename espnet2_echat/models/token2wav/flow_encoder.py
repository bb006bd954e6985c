"""Conformer encoder over speech-token embeddings (CosyVoice flow ``encoder``).

CosyVoice's ``ConformerEncoder`` with ``rel_pos_espnet`` / ``rel_selfattn`` is ESPnet's
Conformer with the latest relative positional encoding, so ESPnet's class is reused.
The one numeric difference is the LayerNorm epsilon: ESPnet's ``LayerNorm`` uses 1e-12,
CosyVoice (WeNet) uses 1e-5; it is set to 1e-5 after construction so that converted
weights give the reference's numbers.
"""

import torch
from espnet2.asr.encoder.conformer_encoder import ConformerEncoder


class FlowConformerEncoder(ConformerEncoder):
    """ESPnet Conformer configured as the CosyVoice-300M flow encoder.

    Args:
        input_size: Token-embedding size.
        output_size: Attention dimension.
        attention_heads: Number of heads.
        linear_units: Feed-forward hidden size.
        num_blocks: Number of blocks.
        dropout_rate: Dropout rate.
        positional_dropout_rate: Dropout on the positional encoding.
        attention_dropout_rate: Dropout on attention weights.
        layer_norm_eps: LayerNorm epsilon (1e-5 as in CosyVoice).
    """

    def __init__(
        self,
        input_size: int = 512,
        output_size: int = 512,
        attention_heads: int = 8,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.1,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__(
            input_size=input_size,
            output_size=output_size,
            attention_heads=attention_heads,
            linear_units=linear_units,
            num_blocks=num_blocks,
            dropout_rate=dropout_rate,
            positional_dropout_rate=positional_dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            input_layer="linear",
            normalize_before=True,
            macaron_style=False,
            rel_pos_type="latest",
            pos_enc_layer_type="rel_pos",
            selfattention_layer_type="rel_selfattn",
            activation_type="swish",
            use_cnn_module=False,
        )
        for module in self.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.eps = layer_norm_eps

"""GAN training pieces for HiFT, following CosyVoice's ``cosyvoice.hifigan.hifigan.HiFiGan``.

Reused from ESPnet: the multi-scale + multi-period HiFi-GAN discriminator and the
least-squares adversarial / feature-matching losses. CosyVoice pairs the multi-period
discriminator with a multi-resolution *spectrogram* discriminator; ESPnet has none, so
its multi-scale discriminator stands in for that half. Written here: CosyVoice's
truncated pointwise relativistic (TPR) loss, which ESPnet does not have.

CosyVoice's generator loss: adv + 2 * fm + 45 * mel + 1 * tpr + 1 * f0 where its
``feature_loss`` already doubles the L1 sum; both factors are kept (``fm_scale``).
"""

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from espnet2.gan_tts.hifigan.hifigan import HiFiGANMultiScaleMultiPeriodDiscriminator
from espnet2.gan_tts.hifigan.loss import (
    DiscriminatorAdversarialLoss,
    FeatureMatchLoss,
    GeneratorAdversarialLoss,
)

from espnet2_echat.models.token2wav.mel import MatchaMelSpectrogram


def tpr_loss(
    real_outs: Sequence[torch.Tensor],
    fake_outs: Sequence[torch.Tensor],
    tau: float = 0.04,
) -> torch.Tensor:
    """CosyVoice's truncated pointwise relativistic loss over discriminator outputs."""
    loss = 0.0
    for dr, dg in zip(real_outs, fake_outs):
        m_dg = torch.median(dr - dg)
        sel = dr < dg + m_dg
        l_rel = (
            torch.mean(((dr - dg) - m_dg)[sel] ** 2)
            if bool(sel.any())
            else dr.new_zeros(())
        )
        loss = loss + tau - F.relu(tau - l_rel)
    return loss


def _final_outputs(outs: List[List[torch.Tensor]]) -> List[torch.Tensor]:
    return [o[-1] for o in outs]


class HiFTGANLoss(torch.nn.Module):
    """Discriminator and CosyVoice's HiFT generator/discriminator losses.

    Args:
        discriminator_conf: ``HiFiGANMultiScaleMultiPeriodDiscriminator`` arguments
            (default: ESPnet's full-size discriminator).
        mel_conf: Mel front-end of the reconstruction loss (CosyVoice: fmax None).
        mel_weight, fm_weight, tpr_weight, tpr_tau, f0_weight: loss weights.
    """

    def __init__(
        self,
        discriminator_conf: Optional[Dict] = None,
        mel_conf: Optional[Dict] = None,
        mel_weight: float = 45.0,
        fm_weight: float = 2.0,
        fm_scale: float = 2.0,
        tpr_weight: float = 1.0,
        tpr_tau: float = 0.04,
        f0_weight: float = 1.0,
    ):
        super().__init__()
        self.discriminator = HiFiGANMultiScaleMultiPeriodDiscriminator(
            **(discriminator_conf or {})
        )
        mel_conf = dict(mel_conf or {})
        mel_conf["fmax"] = None
        self.loss_mel = MatchaMelSpectrogram(**mel_conf)
        self.adv = GeneratorAdversarialLoss(average_by_discriminators=False)
        self.disc_adv = DiscriminatorAdversarialLoss(average_by_discriminators=False)
        self.fm = FeatureMatchLoss(
            average_by_layers=False,
            average_by_discriminators=False,
            include_final_outputs=True,
        )
        self.mel_weight, self.fm_weight, self.fm_scale = mel_weight, fm_weight, fm_scale
        self.tpr_weight, self.tpr_tau, self.f0_weight = tpr_weight, tpr_tau, f0_weight

    def generator_loss(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        f0: Optional[torch.Tensor] = None,
        f0_target: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """(B, S) real and generated waveforms -> dict of losses (``loss`` is the total)."""
        p_fake = self.discriminator(fake.unsqueeze(1))
        with torch.no_grad():
            p_real = self.discriminator(real.unsqueeze(1))
        out = {
            "adv_loss": self.adv(p_fake),
            "fm_loss": self.fm_scale * self.fm(p_fake, p_real),
            "mel_loss": F.l1_loss(self.loss_mel(fake), self.loss_mel(real)),
            "tpr_loss": tpr_loss(
                _final_outputs(p_real), _final_outputs(p_fake), self.tpr_tau
            ),
        }
        total = (
            out["adv_loss"]
            + self.fm_weight * out["fm_loss"]
            + self.mel_weight * out["mel_loss"]
        )
        total = total + self.tpr_weight * out["tpr_loss"]
        if f0 is not None and f0_target is not None:
            out["f0_loss"] = F.l1_loss(f0, f0_target)
            total = total + self.f0_weight * out["f0_loss"]
        out["loss"] = total
        return out

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Least-squares discriminator loss (+ TPR) on detached generated audio."""
        p_fake = self.discriminator(fake.detach().unsqueeze(1))
        p_real = self.discriminator(real.unsqueeze(1))
        real_loss, fake_loss = self.disc_adv(p_fake, p_real)
        tpr = tpr_loss(_final_outputs(p_real), _final_outputs(p_fake), self.tpr_tau)
        return {
            "real_loss": real_loss,
            "fake_loss": fake_loss,
            "tpr_loss": tpr,
            "loss": real_loss + fake_loss + self.tpr_weight * tpr,
        }

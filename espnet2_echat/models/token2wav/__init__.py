"""CosyVoice-300M-25Hz style token2wav: flow-matching mel decoder and HiFT vocoder.

One module per part: ``mel`` (Matcha mel front-end), ``flow_encoder`` (Conformer over
speech tokens), ``length_regulator``, ``estimator`` (the U-Net velocity estimator),
``cfm`` (conditional flow matching: Euler solver and training loss), ``flow`` (the
assembled flow model), ``f0_predictor`` and ``hift`` (the vocoder), ``hift_gan``
(discriminator and CosyVoice's GAN losses), ``griffin_lim`` (a signal-processing
stand-in vocoder), ``speaker_prompt`` / ``prompt_frontend`` (the voice prompt and how it is
computed), ``streaming`` (chunked synthesis) and ``espnet_model`` (the ESPnet model that
owns flow, vocoder and the stored speaker prompt).
"""

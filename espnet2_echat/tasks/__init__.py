"""The plugin's ESPnet tasks. Importing this package makes ESPnet's checkpoint loaders
(``--init_param``, resume, n-best averaging, ``build_model_from_file``) weights-only."""

from espnet2_echat.safety.checkpoints import install as _install_weights_only_loads

_install_weights_only_loads()

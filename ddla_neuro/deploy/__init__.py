"""The deploy side: a trained model as a NetSpec (`ir`, `quant`), run by the fast simulator
(`sim`) or on Lava (`lava_run`, `lava/`) under one contract (`run`), costed on a hardware
profile (`cost`, `profiles`) and reported (`report`). `python -m ddla_neuro.deploy` is `cli`.

Nothing is imported here: the Lava worker imports `deploy.spec` without torch.
"""

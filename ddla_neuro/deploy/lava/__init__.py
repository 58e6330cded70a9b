"""Lava (lava-nc 0.10) processes for delta-spike networks: `process.py` (ports and vars) and
`models.py` (their behaviour, `floating_pt` and `fixed_pt`).

Only process and model modules live here, and none imports torch: Lava's compiler executes
every module of this directory when it looks for process models.
"""

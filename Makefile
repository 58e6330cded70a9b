# Every target creates .venv first when it is missing; a second `make setup` does nothing.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# python3.10 on the PATH, else pyenv's install (the shim may exist without 3.10 being active).
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10.*/bin/python3.10; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { command -v "$$p"; break; }; done)

.PHONY: setup demo test bench models clean

# The default model of `python -m ddla_neuro.deploy`: a convnet on digits, trained as a baseline,
# then fine-tuned with DDLA (~2 min on 2 cores). One thread: the same weights on every CPU machine.
DEFAULT_MODEL := models/digits-convnet-ddla
BASE_MODEL := runs/models/digits-convnet-baseline
TRAIN_BASE := -m ddla_neuro.train --model convnet --dataset digits --timesteps 6 --epochs 60 --method baseline --seed 0 --device cpu --out $(BASE_MODEL)
TRAIN_DEFAULT := -m ddla_neuro.train --init $(BASE_MODEL)/model.pt --epochs 20 --method ddla --keep 0.3 --lam 0.5 --seed 0 --device cpu --out $(DEFAULT_MODEL)
# A 28x28 model beside it: the convnet on Fashion-MNIST (apt-get install dataset-fashion-mnist),
# the recipe of docs/RESULTS.md's Fashion-MNIST table (~50 min on one core).
FMNIST_MODEL := models/fmnist-convnet-ddla
FMNIST_BASE := runs/models/fmnist-convnet-baseline
TRAIN_FMNIST_BASE := -m ddla_neuro.train --model convnet --dataset fashion-mnist --timesteps 6 --epochs 10 --batch-size 128 --method baseline --seed 0 --device cpu --out $(FMNIST_BASE)
TRAIN_FMNIST := -m ddla_neuro.train --init $(FMNIST_BASE)/model.pt --dataset fashion-mnist --epochs 3 --batch-size 128 --method ddla --keep 0.3 --lam 0.5 --seed 0 --device cpu --out $(FMNIST_MODEL)

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "error: python3.10 not found (lava-nc 0.10 needs Python 3.10): install it, e.g. 'pyenv install 3.10', or set PYTHON310=/path/to/python3.10"; exit 1; fi
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,sanafe]'
	@# NeuroBench 2.3.0, a test dependency: its metrics need only torch and snntorch (in [dev]);
	@# its declared torchaudio would make pip swap the CUDA torch build, so it goes in without deps.
	@# Sinabs 3.1.3 (interop tests) likewise: it pins nir <= 1.0.4 and the samna hardware library,
	@# neither of which its NIR export needs (pbr, which it imports, is in [dev]).
	@# lava-dl 0.6.0 (the netx tests' reference: its own netx runner and slayer) pins torch < 2.4;
	@# its netx and slayer run on ours, with OpenCV (which slayer imports) and nothing else.
	$(PY) -m pip install -q --no-deps neurobench==2.3.0 sinabs==3.1.3 lava-dl==0.6.0 opencv-python-headless==4.14.0.94
	@touch $(STAMP)

# The main job: deploy the shipped default model to Lava on the digits test split, cost it on Loihi 2.
demo: setup
	$(PY) -m ddla_neuro.deploy --profile loihi2 --out runs/deploy

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

models: setup
	OMP_NUM_THREADS=1 $(PY) $(TRAIN_BASE)
	OMP_NUM_THREADS=1 $(PY) $(TRAIN_DEFAULT)
	$(PY) -m ddla_neuro.modelcard $(DEFAULT_MODEL) "$$(printf 'OMP_NUM_THREADS=1 python %s\nOMP_NUM_THREADS=1 python %s' '$(TRAIN_BASE)' '$(TRAIN_DEFAULT)')"
	OMP_NUM_THREADS=1 $(PY) $(TRAIN_FMNIST_BASE)
	OMP_NUM_THREADS=1 $(PY) $(TRAIN_FMNIST)
	$(PY) -m ddla_neuro.modelcard $(FMNIST_MODEL) "$$(printf 'OMP_NUM_THREADS=1 python %s\nOMP_NUM_THREADS=1 python %s' '$(TRAIN_FMNIST_BASE)' '$(TRAIN_FMNIST)')"

bench: setup
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/deploy_profiles.py

clean:
	rm -rf runs .pytest_cache

#!/usr/bin/env bash
# The CUDA checks and GPU speed figures, run on a machine with a CUDA GPU and a CUDA torch,
# from the repository root, without installing the package:
#   OUT=some/folder bash benchmarks/speed/gpu_check.sh
# 1. tests/test_device.py (GPU vs CPU: logits, greedy/beam outputs and scores; training on
#    the GPU, checkpoints, resume on GPU and CPU; ensemble, sampling, bf16; CLI --device);
# 2. tandem bench --device cuda (results JSON written to $OUT);
# 3. the rest of the test suite with train.device/--device at their default `auto`, i.e. on
#    the GPU (server and browser tests left out: they need fastapi/uvicorn/playwright).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1  # absolute: tests start tandem in other folders
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -15 | tee "$OUT/test_device.log"
timeout 200 python3 benchmarks/speed/speed.py --device cuda --out "$OUT" 2>&1 | grep -v "^INFO" | tee "$OUT/bench.log"
timeout "${SUITE_SECONDS:-240}" python3 -m pytest -q -p no:cacheprovider -rfE tests \
  --ignore=tests/test_serve.py --ignore=tests/test_serve_load.py --ignore=tests/test_web.py \
  --ignore=tests/test_device.py -k "not chatterbot" > "$OUT/suite.log" 2>&1
echo "suite exit $?"; grep -E "passed|failed|FAILED|ERROR" "$OUT/suite.log" | tail -30

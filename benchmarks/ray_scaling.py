"""The Ray measurement (RLlib PPO env steps/s with 1 and 2 env runners; the quick suite on the
local and the Ray backend): ``python benchmarks/ray_scaling.py --help`` (the library code is
:mod:`agents.experiments.ray_scaling`; needs the extra ``ray``)."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy and torch are imported

from agents.experiments.ray_scaling import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())

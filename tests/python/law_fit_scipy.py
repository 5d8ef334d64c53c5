"""Reference fit of the D-CPT law with scipy: same objective, same starts, L-BFGS-B.

Reads a serialised `cptc::law::Problem` (JSON: points, huber_delta, n_ref, d_ref, fixed_n,
bounds, starts in theta space) and minimises, from every start, the sum over points of
Huber(delta, ln L_pred - ln L_obs) with an independently written objective and gradient.
Prints JSON: the best objective, its start index and every start's final objective.

Usage: law_fit_scipy.py PROBLEM.json
"""

import json
import os
import sys

# One BLAS thread: L-BFGS-B calls BLAS on 9-vectors; a spinning thread pool makes that ~100x slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit


def main() -> None:
    with open(sys.argv[1]) as fh:
        prob = json.load(fh)
    pts = prob["points"]
    n = np.array([p["n"] for p in pts], dtype=float)
    d = np.array([p["d"] for p in pts], dtype=float)
    r = np.array([p["r"] for p in pts], dtype=float)
    y = np.array([p["loss"] for p in pts], dtype=float)
    delta = float(prob["huber_delta"])
    fixed_n = bool(prob["fixed_n"])
    ln_n = np.log(n / prob["n_ref"])
    ln_d = np.log(d / prob["d_ref"])
    pos = r > 0
    ln_r = np.log(np.where(pos, r, 1.0))
    ln_y = np.log(y)
    bounds = prob["bounds"]

    def bounded(t, name):
        lo, hi = bounds[name]
        s = expit(t)
        return lo + (hi - lo) * s, (hi - lo) * s * (1.0 - s)

    def objective(th):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            e = np.exp(th[0])
            alpha, d_alpha = bounded(th[2], "alpha")
            beta, d_beta = bounded(th[4], "beta")
            gamma, d_gamma = bounded(th[6], "gamma")
            eta, d_eta = bounded(th[7], "eta")
            eps, d_eps = bounded(th[8], "eps")
            ta = np.zeros_like(y) if fixed_n else np.exp(th[1] - alpha * ln_n)
            tb = np.where(pos, np.exp(th[3] + eta * ln_r - beta * ln_d), 0.0)
            ln_re = np.log(r + eps)
            tc = np.exp(th[5] - gamma * ln_re)
            total = e + ta + tb + tc
            res = np.log(total) - ln_y
            quad = np.abs(res) <= delta
            h = np.where(quad, 0.5 * res * res, delta * (np.abs(res) - 0.5 * delta))
            dh = np.where(quad, res, delta * np.sign(res))
            w = dh / total
            g = np.array(
                [
                    np.sum(w * e),
                    np.sum(w * ta),
                    -np.sum(w * ln_n * ta) * d_alpha,
                    np.sum(w * tb),
                    -np.sum(w * ln_d * tb) * d_beta,
                    np.sum(w * tc),
                    -np.sum(w * ln_re * tc) * d_gamma,
                    np.sum(w * ln_r * tb) * d_eta,
                    -np.sum(w * gamma * tc / (r + eps)) * d_eps,
                ]
            )
            f = float(np.sum(h))
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            return np.inf, np.zeros(9)
        return f, g

    finals = []
    for x0 in prob["starts"]:
        out = minimize(
            objective,
            np.array(x0, dtype=float),
            jac=True,
            method="L-BFGS-B",
            # Tolerances far below the defaults: the objective is ~1e-5, where the default
            # gtol (1e-5) would stop at the first step.
            options={"maxiter": 20000, "maxfun": 40000, "ftol": 1e-15, "gtol": 1e-14, "maxcor": 10},
        )
        finals.append(float(out.fun) if np.isfinite(out.fun) else None)
    finite = [(f, i) for i, f in enumerate(finals) if f is not None]
    best, start = min(finite)
    print(json.dumps({"best": best, "start": start, "objectives": finals}))


if __name__ == "__main__":
    main()

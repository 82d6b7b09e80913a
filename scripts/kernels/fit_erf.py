#!/usr/bin/env python3
"""Fits the polynomial behind `erf_lanes_f64` (crates/lsnn-layers/src/kernel/real.rs).

erf(a) = a * g(t) with t = a^2 and g(t) = erf(sqrt t) / sqrt t, an entire function of t, so one
polynomial in u = t/8 - 1 covers t in [0, 16] (|a| <= 4, where erf(a) is 1 - 1.5e-8: beyond it the
kernel holds erf at +-1). The coefficients are Chebyshev interpolation at DEGREE + 1 nodes, in
50-digit arithmetic, converted to powers of u for Horner's scheme. Prints the Rust constant and the
largest relative error of g (Horner in f64, as the kernel evaluates it) on a dense grid.

Needs mpmath only (`pip install mpmath==1.3.0`); run: python3 scripts/kernels/fit_erf.py
"""
import mpmath as mp

mp.mp.dps = 50
DEGREE = 26
T_MAX = 16


def g(t):
    if t == 0:
        return 2 / mp.sqrt(mp.pi)
    a = mp.sqrt(t)
    return mp.erf(a) / a


def chebyshev(n):
    """Coefficients c_j of sum c_j T_j(u) interpolating g at n + 1 Chebyshev nodes."""
    nodes = n + 1
    us = [mp.cos(mp.pi * (k + mp.mpf(1) / 2) / nodes) for k in range(nodes)]
    fs = [g((u + 1) * T_MAX / 2) for u in us]
    cs = []
    for j in range(nodes):
        s = sum(fs[k] * mp.cos(mp.pi * j * (k + mp.mpf(1) / 2) / nodes) for k in range(nodes))
        cs.append(2 * s / nodes)
    cs[0] /= 2
    return cs


def to_powers(cs):
    """Chebyshev coefficients to power-basis coefficients (lowest first)."""
    n = len(cs)
    powers = [mp.mpf(0)] * n
    t_prev, t_cur = [mp.mpf(1)], [mp.mpf(0), mp.mpf(1)]
    for j, c in enumerate(cs):
        tj = t_prev if j == 0 else t_cur
        if j >= 2:
            nxt = [mp.mpf(0)] * (j + 1)
            for i, v in enumerate(t_cur):
                nxt[i + 1] += 2 * v
            for i, v in enumerate(t_prev):
                nxt[i] -= v
            t_prev, t_cur = t_cur, nxt
            tj = t_cur
        for i, v in enumerate(tj):
            powers[i] += c * v
    return powers


def horner_f64(coeffs_high_first, u):
    p = coeffs_high_first[0]
    for c in coeffs_high_first[1:]:
        p = p * u + c
    return p


def main():
    powers = to_powers(chebyshev(DEGREE))
    high_first = [float(c) for c in reversed(powers)]
    worst = 0.0
    steps = 20000
    for i in range(steps + 1):
        t = T_MAX * i / steps
        u = t / 8.0 - 1.0
        got = horner_f64(high_first, u)
        want = g(mp.mpf(t))
        worst = max(worst, abs(float((got - want) / want)))
    print(f"// degree {DEGREE} on t in [0, {T_MAX}]: largest relative error of g {worst:.2e}")
    print(f"// sum of |coefficients| {sum(abs(c) for c in high_first):.3f}")
    print(f"const ERF_G: [f64; {DEGREE + 1}] = [")
    for c in high_first:
        print(f"    {c!r},")
    print("];")


if __name__ == "__main__":
    main()

"""The XRD representation stage by stage (chapter 1).

Form factors, Lorentz-polarization, peak shapes, Caglioti widths, comparisons with pymatgen.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and takes
explicit data (tensors, rows); none reads results or runs an experiment.
"""

from __future__ import annotations

from .primitives import _numpy

__all__ = [
    "SYMBOL",
    "plot_form_factors",
    "plot_lorentz_polarization",
    "plot_peak_profiles",
    "plot_caglioti_width",
    "plot_difference",
    "plot_pymatgen_comparison",
    "plot_variants",
    "plot_setting_variants",
    "setting_panels",
    "plot_stacked",
    "plot_pattern_derivative",
]


def plot_form_factors(ax, s, f, elements, z, s_reflections=None, *, title: str = ""):
    """Atomic form factors ``f(s)`` per element, with the reflections' ``s`` as ticks on the axis.

    Parameters
    ----------
    s
        ``(M,)`` s = sinθ/λ in Å⁻¹.
    f
        ``(S, M)`` form factors (electrons) of the ``S`` elements.
    elements, z
        the ``S`` element symbols and atomic numbers.
    s_reflections
        ``(K,)`` s of the structure's reflections, drawn as ticks at f = 0.

    Returns
    -------
    list
        the lines, one per element, then the ticks if given.
    """
    x = _numpy(s)
    f = _numpy(f)
    lines = [ax.plot(x, f[e], label=f"{el} (Z = {int(z[e])})")[0] for e, el in enumerate(elements)]
    if s_reflections is not None:
        sr = _numpy(s_reflections)
        lines += ax.plot(sr, 0 * sr, "|", color="k", ms=10, label="reflections of the structure")
    ax.set(xlabel="s = sinθ/λ (Å⁻¹)", ylabel="f(s) (electrons)", xlim=(0, float(x[-1])), title=title)
    ax.set_ylim(top=1.45 * float(f.max()))  # room for the legend above the curves
    ax.legend(fontsize=8, loc="upper right")
    return lines


def plot_lorentz_polarization(ax, two_theta, lp):
    """The Lorentz–polarization factor ``(M,)`` against 2θ ``(M,)`` (degrees) on a log axis; returns the line."""
    (line,) = ax.semilogy(_numpy(two_theta), _numpy(lp), color="C3")
    ax.set(xlabel="2θ (°)", ylabel="LP(θ)", title="Lorentz–polarization factor")
    ax.text(0.97, 0.95, "unpolarised beam", transform=ax.transAxes, ha="right", va="top", fontsize=8)
    return line


def plot_peak_profiles(ax_lin, ax_log, offset, curves: dict, fwhm: float, window: float):
    """Peak profiles on a linear and a log axis: the FWHM on the first, a ±``window`` band on the second.

    Parameters
    ----------
    offset
        ``(M,)`` 2θ − 2θ₀ in degrees.
    curves
        name → profile ``(M,)`` (peak height 1), e.g. Gaussian, Lorentzian, pseudo-Voigt.
    fwhm
        the FWHM H (°); the linear axis spans ±4H.
    window
        half width (°) of the fast renderer's window, drawn as two vertical lines.

    Returns
    -------
    dict ``"linear"`` and ``"log"`` lists of profile lines, ``"window"`` the two vertical lines.
    """
    x = _numpy(offset)
    out: dict[str, list] = {"linear": [], "log": [], "window": []}
    for (name, y), style in zip(curves.items(), ["--", ":", "-", "-."], strict=False):
        out["linear"] += ax_lin.plot(x, _numpy(y), style, label=name)
        out["log"] += ax_log.semilogy(x, _numpy(y), style, label=name)
    ax_lin.set(
        xlim=(-4 * fwhm, 4 * fwhm), xlabel="2θ − 2θ₀ (°)", ylabel="profile (peak height = 1)", title="linear scale"
    )
    ax_lin.axhline(0.5, color="grey", lw=0.8)
    ax_lin.annotate(
        f"FWHM H = {fwhm:.3f}°", (fwhm / 2, 0.5), xytext=(fwhm, 0.62), arrowprops=dict(arrowstyle="->", lw=0.8)
    )
    ax_lin.legend(fontsize=8, loc="upper left")
    out["window"] = [ax_log.axvline(sign * window, color="grey", lw=0.8) for sign in (-1, 1)]
    ax_log.text(window, 0.3, " window of the\n fast renderer", fontsize=8, va="top")
    ax_log.set(ylim=(1e-6, 2), xlabel="2θ − 2θ₀ (°)", ylabel="profile (log scale)", title="log scale: Lorentzian tails")
    return out


def plot_caglioti_width(ax, two_theta, fwhm, step: float, *, title: str = ""):
    """Caglioti FWHM ``(M,)`` (°) against 2θ ``(M,)``, with grid points per FWHM (grid ``step`` °) on the right.

    Returns ``(line, secondary_axis)``.
    """
    x = _numpy(two_theta)
    (line,) = ax.plot(x, _numpy(fwhm), color="C2")
    ax.set(xlabel="2θ (°)", ylabel="FWHM H (°)", xlim=(float(x[0]), float(x[-1])), title=title)
    right = ax.secondary_yaxis("right", functions=(lambda h: h / step, lambda n: n * step))
    right.set_ylabel(f"grid points per FWHM (step {step:g}°)")
    return line, right


def plot_difference(ax, two_theta, difference, *, ylabel: str, title: str = ""):
    """A difference of two patterns ``(P,)`` against 2θ ``(P,)``, scientific y ticks; returns the line."""
    x = _numpy(two_theta)
    (line,) = ax.plot(x, _numpy(difference), color="k", lw=0.7)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set(xlabel="2θ (°)", ylabel=ylabel, title=title, xlim=(float(x[0]), float(x[-1])))
    return line


def plot_pymatgen_comparison(axes, two_theta, detail: dict):
    """Three panels: pymatgen's sticks over xrdnb's (mirrored), both broadened patterns, their difference.

    Parameters
    ----------
    axes
        three axes, top to bottom.
    two_theta
        ``(P,)`` the grid (°).
    detail
        ``x_pm, y_pm`` (pymatgen's 2θ and intensity of 100), ``ours`` (a peak table with
        ``two_theta`` and ``intensity_scaled``), ``pm_pattern`` and ``ours_pattern`` ``(P,)``, as
        returned by :func:`xrdnb.comparisons.compare_with_pymatgen`.

    Returns
    -------
    dict ``"sticks"`` (two line collections), ``"patterns"`` (two lines), ``"difference"`` (a line).
    """
    ax_sticks, ax_pattern, ax_diff = axes
    x = _numpy(two_theta)
    ours = detail["ours"]
    sticks = [
        ax_sticks.vlines(detail["x_pm"], 0, detail["y_pm"], color="C1", lw=1.2, label="pymatgen XRDCalculator"),
        ax_sticks.vlines(
            ours.two_theta, 0, -ours.intensity_scaled, color="C0", lw=1.2, label="xrdnb peak_table (mirrored)"
        ),
    ]
    ax_sticks.axhline(0, color="k", lw=0.5)
    ax_sticks.set(ylabel="scaled intensity (of 100)", title="peak lists")
    ax_sticks.legend(fontsize=8, loc="upper right")
    patterns = [
        ax_pattern.plot(
            x, detail["pm_pattern"], color="C1", lw=2.5, alpha=0.6, label="pymatgen sticks, numpy pseudo-Voigt"
        )[0],
        ax_pattern.plot(x, detail["ours_pattern"], color="C0", lw=0.8, label="xrdnb simulate_pattern")[0],
    ]
    ax_pattern.set(ylabel="intensity (max = 1)", title="broadened patterns")
    ax_pattern.legend(fontsize=8, loc="upper right")
    diff = plot_difference(
        ax_diff,
        x,
        detail["ours_pattern"] - detail["pm_pattern"],
        ylabel="xrdnb − reference",
        title="difference (xrdnb with its default renderer minus the reference)",
    )
    return {"sticks": sticks, "patterns": patterns, "difference": diff}


def plot_variants(ax, two_theta, patterns: dict, *, centre: float, half_width: float, highlight=None, title: str = ""):
    """Patterns (label → ``(P,)``, max = 1) in a 2θ window ``centre ± half_width`` (°); ``highlight`` in bold black.

    Returns the lines, one per pattern.
    """
    x = _numpy(two_theta)
    window = (x > centre - half_width) & (x < centre + half_width)
    lines = []
    for label, y in patterns.items():
        bold = label == highlight
        lines += ax.plot(
            x[window], _numpy(y)[window], lw=1.8 if bold else 1.0, color="k" if bold else None, label=label
        )
    ax.set(xlabel="2θ (°)", ylabel="intensity (max = 1)", title=title)
    ax.legend(fontsize=8)
    return lines


def plot_setting_variants(
    ax, two_theta, patterns: dict, *, symbol: str, si_value, centre: float, half_width: float = 1.5
):
    """Patterns (setting value → ``(P,)``) around ``centre`` (°), the one at the SI value ``si_value`` in bold black.

    Returns the lines, one per pattern (via :func:`plot_variants`).
    """
    labels = {v: f"{symbol} = {v:g}" + (" (SI)" if v == si_value else "") for v in patterns}
    return plot_variants(
        ax,
        two_theta,
        {labels[v]: y for v, y in patterns.items()},
        centre=centre,
        half_width=half_width,
        highlight=f"{symbol} = {si_value:g} (SI)",
        title=f"vary {symbol}, peak at {centre:.2f}°",
    )


def setting_panels(
    axes, two_theta, study: dict, centres: dict, settings, lines: dict, *, zoom_centre: float, zoom_label: str = ""
):
    """Six panels of the instrument settings: U, V, W, η around their peaks, the X-ray lines stacked, a zoom.

    Parameters
    ----------
    axes
        six axes (e.g. a 2 × 3 grid's ``axes.flat``).
    two_theta
        ``(P,)`` the grid (°).
    study
        setting name (``"U"``, ``"V"``, ``"W"``, ``"eta"``, ``"wavelength"``) → the result of
        :func:`xrdnb.comparisons.setting_variants`.
    centres
        setting name → 2θ (°) of its panel's window (±1.5°).
    settings
        the SI settings (their values are drawn in bold).
    lines
        X-ray line name → wavelength (Å), the values of ``study["wavelength"]``; the first two are zoomed
        ±0.4° around ``zoom_centre``.

    Returns
    -------
    list
        the lines of each panel.
    """
    axes = list(axes)
    out = [
        plot_setting_variants(
            ax,
            two_theta,
            study[p]["patterns"],
            symbol=SYMBOL.get(p, p),
            si_value=getattr(settings, p),
            centre=centres[p],
        )
        for ax, p in zip(axes[:4], ["U", "V", "W", "eta"], strict=True)
    ]
    named = {f"{name}, λ = {lam:g} Å": study["wavelength"]["patterns"][lam] for name, lam in lines.items()}
    out.append(plot_stacked(axes[4], two_theta, named, title="X-ray line, full range"))
    first_two = dict(list(named.items())[:2])
    title = f"{' vs '.join(list(lines)[:2])} at {zoom_label or f'{zoom_centre:.2f}°'}"
    out.append(plot_variants(axes[5], two_theta, first_two, centre=zoom_centre, half_width=0.4, title=title))
    return out


SYMBOL = {"eta": "η", "wavelength": "X-ray line"}
"""Display symbols of the ``XRDSettings`` fields that are not their own symbol."""


def plot_stacked(
    ax,
    two_theta,
    patterns: dict,
    *,
    offset: float = 1.1,
    base=None,
    base_label: str = "ground truth",
    title: str = "",
    inline: bool = False,
):
    """Patterns (label → ``(P,)``, max = 1) stacked ``offset`` apart, above an optional ``base`` pattern in black.

    ``inline``: each pattern's label is written in its colour at the right end, above its baseline (in the
    gap between the patterns, where high-angle peaks are weak), instead of a legend that would cover peaks.

    Returns the lines (the base first, if given).
    """
    x = _numpy(two_theta)
    lines = [] if base is None else ax.plot(x, _numpy(base), color="k", lw=0.7, label=base_label)
    start = 0 if base is None else 1
    for i, (label, y) in enumerate(patterns.items(), start):
        lines += ax.plot(x, _numpy(y) + offset * i, lw=0.7, color=f"C{i - start}", label=label)
    room = 1.3 if inline else 1.7  # a legend needs more room above the top pattern
    ax.set(
        xlabel="2θ (°)",
        ylabel=f"intensity (max = 1, offset by {offset:g})",
        title=title,
        xlim=(float(x[0]), float(x[-1])),
        ylim=(-0.1, offset * (len(patterns) + start - 1) + room),
    )
    if inline:
        for i, line in enumerate(lines):
            ax.text(
                0.99 * float(x[-1]),
                offset * (i + 0.45),
                line.get_label(),
                color=line.get_color(),
                ha="right",
                fontsize=8,
            )
    else:
        ax.legend(fontsize=8, loc="upper right", ncol=2 if len(lines) > 3 else 1)
    return lines


def plot_pattern_derivative(
    axes, two_theta, pattern, derivative, finite_difference, *, centre: float, step: float, parameter: str = "a"
):
    """Three panels: the pattern, its derivative with a finite difference over it, a zoom ±1.5° around ``centre``.

    Parameters
    ----------
    two_theta, pattern, derivative, finite_difference
        ``(P,)``: the grid (°), the pattern (max = 1), ∂x/∂p by autograd and by a central difference (per Å).
    centre
        2θ (°) of the zoom.
    step
        the finite-difference step (Å), for the legend.

    Returns
    -------
    dict
        ``"pattern"``, ``"derivative"`` (two lines) and ``"zoom"`` (three lines: AD, difference and the
        pattern on a twin axis).
    """
    x, y, dx, fd = (_numpy(v) for v in (two_theta, pattern, derivative, finite_difference))
    span = (float(x[0]), float(x[-1]))
    out = {"pattern": axes[0].plot(x, y, color="k", lw=0.8)[0]}
    axes[0].set(ylabel="x (max = 1)", title="pattern", xlim=span)
    out["derivative"] = [
        axes[1].plot(x, dx, color="C0", lw=0.8, label="autograd (jvp, fast renderer)")[0],
        axes[1].plot(x, fd, "--", color="C1", lw=0.8, label=f"central difference, step {step:g} Å")[0],
    ]
    axes[1].set(
        ylabel=f"∂x/∂{parameter} (Å⁻¹)", title=f"derivative of every bin with respect to {parameter}", xlim=span
    )
    axes[1].legend(fontsize=8, loc="upper right")
    w = (x > centre - 1.5) & (x < centre + 1.5)
    out["zoom"] = [
        axes[2].plot(x[w], dx[w], color="C0", label=f"∂x/∂{parameter} (autograd)")[0],
        axes[2].plot(x[w][::10], fd[w][::10], "o", ms=3, color="C1", label="central difference")[0],
    ]
    axes[2].set(xlabel="2θ (°)", ylabel=f"∂x/∂{parameter} (Å⁻¹)")
    twin = axes[2].twinx()
    out["zoom"] += twin.plot(x[w], y[w], color="grey", lw=0.8, alpha=0.7)
    twin.set_ylabel("x (grey)")
    twin.grid(False)
    axes[2].legend(fontsize=8, loc="upper left")
    return out

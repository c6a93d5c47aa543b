"""AMD distance against XRD similarity, one panel per SI-table cell (chapter 6).

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and takes
explicit data (tensors, rows); none reads results or runs an experiment.
"""

from __future__ import annotations

__all__ = ["correlation_scatter"]


def _dissimilarity(rows, loss: str):
    """1 − similarity of ``loss`` (the MSE itself for ``"mse"``), floored at 1e-16 for a log axis."""
    import numpy as np

    s = rows[f"similarity_{loss}"].to_numpy(dtype=float)
    return np.maximum(-s if loss == "mse" else 1.0 - s, 1e-16)


def correlation_scatter(rows, cells, noise_type: str, *, caption: str = "", fig=None):
    """AMD distance to the truth against each SI column's dissimilarity, one panel per (column, level).

    One point per copy at the end of GD, coloured by structure; log axes, y inverted so that up
    is more similar. Panel titles give our Pearson r (``cells``) and the paper's (Table S1).

    Parameters
    ----------
    rows
        analysed sweep rows (``structure``, ``noise_type``, ``noise_level``, ``loss``,
        ``constrained``, ``amd_distance``, ``similarity_<loss>``).
    cells
        :func:`xrdnb.tables.correlation_cells` of the same rows at the end of GD.
    noise_type
        ``"lattice"`` or ``"coordinates"``.
    caption
        a second title line, e.g. which run made the points (:meth:`xrdnb.runs.StudyRun.caption`).
    fig
        the figure to draw on (default: a new pyplot figure of a size that fits the grid).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when ``rows`` hold no finite run of ``noise_type``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from ..tables import COLUMN_RUNS, PAPER_TABLE_S1, SI_COLUMNS
    from ..vocabulary import NOISE_LABELS, NOISE_UNITS, RUN_LABELS

    data = rows[(rows["noise_type"] == noise_type) & np.isfinite(rows["amd_distance"])]
    levels = sorted(data["noise_level"].unique())
    constrained = data["constrained"].astype(bool)
    columns = [
        c for c in SI_COLUMNS if ((data["loss"] == COLUMN_RUNS[c][0]) & (constrained == COLUMN_RUNS[c][1])).any()
    ]
    if not levels or not columns:
        return None
    if fig is None:
        # at most 8.3 in wide for five levels, so that the book shows it at ≥ 75 % (its labels stay legible)
        fig = plt.figure(figsize=(1.45 * len(levels) + 0.6, 1.45 * len(columns) + 1.3), layout="constrained")
    axes = fig.subplots(len(columns), len(levels), squeeze=False, sharex=True, sharey="row")
    structures = sorted(data["structure"].unique())
    colour = {s: plt.cm.tab10(i % 10) for i, s in enumerate(structures)}
    ours = cells.set_index(["noise_type", "noise_level", "column"])["pearson"]
    label = NOISE_LABELS[noise_type]
    for j, level in enumerate(levels):
        for i, column in enumerate(columns):
            ax, (loss, con) = axes[i, j], COLUMN_RUNS[column]
            sub = data[np.isclose(data["noise_level"], level) & (data["loss"] == loss) & (constrained == con)]
            for s, group in sub.groupby("structure"):
                ax.scatter(group["amd_distance"], _dissimilarity(group, loss), s=9, color=colour[s], alpha=0.85)
            r = ours.get((noise_type, level, column), np.nan)
            paper = PAPER_TABLE_S1.loc[(label, level), column] if (label, level) in PAPER_TABLE_S1.index else np.nan
            r_text = f"{r:.2f}" if np.isfinite(r) else "n/a"
            paper_text = f"{paper:g}" if np.isfinite(paper) else "–"
            ax.set_title(f"σ = {level:g}\nr = {r_text} (paper {paper_text})", fontsize=7)
            if i == len(columns) - 1:
                ax.set_xlabel("AMD distance\nto truth (Å)", fontsize=7)
            if j == 0:
                ax.set_ylabel(
                    ("MSE" if loss == "mse" else "1 − similarity") + f"\n({RUN_LABELS[(loss, con)]} runs)", fontsize=7
                )
            ax.tick_params(which="both", labelsize=6)
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_yscale("log")
    for i in range(len(columns)):
        axes[i, 0].invert_yaxis()  # shared per row: up = more similar
    handles = [plt.Line2D([], [], marker="o", ls="", color=colour[s], label=s) for s in structures]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=7, title="structure", title_fontsize=7)
    unit = NOISE_UNITS[noise_type] or "relative strain"
    title = f"{label} noise (σ in {unit}), end of GD: one point per copy;\nlog axes, y inverted (up = more similar)"
    fig.suptitle(title + (f"\n{caption}" if caption else ""), fontsize=8)
    return fig

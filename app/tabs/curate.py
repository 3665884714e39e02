"""Tab 3: the cluster-selected subset on a scatter of all pairs; drop a bad pair; score filter."""

from __future__ import annotations

import gradio as gr

from app import curation, pairs
from app.settings import SETTINGS
from app.form import finite_number, whole_number
from app.ui import HEAVY, Context, user_errors


def _summary(data: dict | None, replaced: str | None = None, dropped: str | None = None,
             stale: bool = False) -> str:
    if not data:
        return "No selection yet."
    if stale:
        return (f"**This selection is stale**: it chose {len(data['ids'])} of "
                f"{len(data['all_ids'])} pairs before the pairs changed. Select again.")
    text = (f"**{len(data['ids'])} pairs chosen** of {len(data['all_ids'])} training pairs "
            f"({data['method']}, embedder `{data['embedder']}`); {len(data['dropped'])} dropped.")
    other = data.get("other_look") or []
    if data["method"] == "one_look":
        agree = data.get("consistency") or {}
        text += (f" One look kept: {len(other)} pairs of other looks left out"
                 + (f" ({', '.join(f'`{i}`' for i in other[:8])}{', ...' if len(other) > 8 else ''})"
                    if other else " (the edits form a single look)")
                 + (f"; edits agree {agree['all']:.2f} over all pairs, {agree['kept']:.2f} in the "
                    "look kept (mean cosine of each edit's direction to their mean)." if agree else "."))
    if dropped:
        text += f" Dropped `{dropped}`" + (f", replaced by `{replaced}` (same cluster)." if replaced
                                            else "; its cluster had no other pair.")
    return text + " Next: **4 · Fine-tune**."


def build_curate_tab(context: Context, workspace_state: gr.State) -> dict:
    with gr.Tab("3 · Curate", id="curate") as tab:
        gr.Markdown("The paper's similarity clustering: embed every training pair, K-means with "
                    "k = pairs wanted, keep the pair nearest each centre. Click a chosen pair and "
                    "drop it if it is bad: the next-nearest pair of its cluster replaces it.")
        with gr.Row():
            k = gr.Number(value=SETTINGS.subset_size, label="pairs to keep (k)",
                          elem_id="curate-k")
            method = gr.Radio([("cluster", "cluster"), ("random", "random"),
                               ("one look, then cluster", "one_look")], value="cluster",
                              label="method", info="one look: keep the pairs whose edits agree "
                              "(a diffusion teacher's seeds draw different looks), then cluster")
            embedder = gr.Dropdown(curation.embedder_choices(), value="builtin", label="embedder")
        with gr.Row():
            score = gr.Dropdown([], value=None, label="filter by score (where the teacher stored one)",
                                allow_custom_value=True)
            minimum = gr.Number(value=None, label="keep pairs scoring at least")
            select_button = gr.Button("Select pairs", variant="primary")
        summary = gr.Markdown()
        with gr.Row():
            plot = gr.Plot(label="clusters")
            gallery = gr.Gallery(label="chosen pairs, source | edit (click one to drop it)",
                                 columns=4, height=420, buttons=["fullscreen"])
        with gr.Row():
            pair_id = gr.Textbox(label="pair to drop", placeholder="click a chosen pair")
            drop_button = gr.Button("Drop this pair")

    def chosen_gallery(folder, data):
        return pairs.pair_gallery_items(folder, data["ids"] if data else [])

    @user_errors
    def run_select(workspace_id, k_value, method_value, embedder_value, score_value, minimum_value):
        k_value = whole_number(k_value or SETTINGS.subset_size, "pairs to keep")
        if minimum_value is not None:
            minimum_value = finite_number(minimum_value, "minimum score")
        workspace = context.workspace(workspace_id)
        folder = workspace.current()
        data = curation.run_selection(folder, k_value, method_value, embedder=embedder_value,
                                      score=score_value or None, minimum=minimum_value)
        return workspace.id, curation.scatter(data), chosen_gallery(folder, data), _summary(data)

    @user_errors
    def run_drop(workspace_id, pair):
        workspace = context.workspace(workspace_id)
        folder = workspace.current()
        data, replacement = curation.drop_pair(folder, (pair or "").strip())
        return (workspace.id, curation.scatter(data), chosen_gallery(folder, data),
                _summary(data, replacement, pair))

    def on_open(workspace_id):
        """Show the saved selection and the scores the pairs carry (private, UI only)."""
        if not workspace_id:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        workspace = context.workspace(workspace_id)
        try:
            folder = workspace.current()
            dataset = folder.dataset()
        except Exception:  # no concept yet: nothing to show
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        data = folder.selection()
        names = curation.score_names(dataset) if dataset else []
        return (curation.scatter(data), chosen_gallery(folder, data),
                _summary(data, stale=curation.is_stale(folder, data)),
                gr.update(choices=names, info=None if names else "no scores stored with these pairs"))

    def on_pick(evt: gr.SelectData):
        caption = evt.value.get("caption", "") if isinstance(evt.value, dict) else ""
        return caption.split(" ")[0]

    heavy = dict(concurrency_limit=SETTINGS.heavy_concurrency, concurrency_id=HEAVY)
    select_button.click(run_select, [workspace_state, k, method, embedder, score, minimum],
                        [workspace_state, plot, gallery, summary], api_name="select", **heavy)
    drop_button.click(run_drop, [workspace_state, pair_id], [workspace_state, plot, gallery, summary],
                      api_name="drop_pair")
    gallery.select(on_pick, None, pair_id, api_visibility="private")
    # Entering the tab shows what the earlier steps left there.
    tab.select(on_open, [workspace_state], [plot, gallery, summary, score], api_visibility="private")
    return {}

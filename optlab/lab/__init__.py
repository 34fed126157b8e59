"""The optimizer laboratory: see, measure and compare optimizers the way the lectures do.

- Surfaces (lectures 01–04): lecture 02's ``5x² + 2xy + 3y²``, an elongated bowl of a
  chosen condition number, Rosenbrock, Beale, a saddle and a surface with local minima,
  each with its known minima; gradient noise of a chosen scale on request.
- Trajectories: several optimizers from one start for N steps in one compiled program,
  drawn on the contour plot (PNG) or animated (GIF).
- Conditioning (lecture 04): the Hessian's spectrum exactly for small problems, its
  extreme eigenvalues by Hessian-vector products for a network, the condition number.
- Sanity checks (lecture 03's "proper methodology"): ``doctor``.
- The learning-rate range test (``lr_find``) and vectorized hyper-parameter sweeps
  (``sweep``): every configuration of a grid trained at once in one ``vmap``ped program.
"""

# --- surfaces and trajectories (optlab/lab/_surfaces.py, _trajectories.py, _plot.py) ---
from optlab.lab._plot import plot_losses as plot_losses
from optlab.lab._plot import plot_trajectories as plot_trajectories
from optlab.lab._surfaces import SURFACES as SURFACES
from optlab.lab._surfaces import Surface as Surface
from optlab.lab._surfaces import beale as beale
from optlab.lab._surfaces import elongated_bowl as elongated_bowl
from optlab.lab._surfaces import lecture02_quadratic as lecture02_quadratic
from optlab.lab._surfaces import local_minima as local_minima
from optlab.lab._surfaces import rosenbrock as rosenbrock
from optlab.lab._surfaces import saddle as saddle
from optlab.lab._trajectories import Trajectories as Trajectories
from optlab.lab._trajectories import trajectories as trajectories

# isort: split
# --- conditioning and sanity checks (optlab/lab/_hessian.py, _doctor.py) ---
from optlab.lab._doctor import Check as Check
from optlab.lab._doctor import DoctorReport as DoctorReport
from optlab.lab._doctor import doctor as doctor
from optlab.lab._hessian import Eigenpair as Eigenpair
from optlab.lab._hessian import condition_number as condition_number
from optlab.lab._hessian import extreme_eigenvalues as extreme_eigenvalues
from optlab.lab._hessian import hessian as hessian
from optlab.lab._hessian import hessian_eigenvalues as hessian_eigenvalues
from optlab.lab._hessian import hvp as hvp
from optlab.lab._hessian import lanczos as lanczos
from optlab.lab._hessian import power_iteration as power_iteration

# --- learning-rate range test and sweeps (optlab/lab/_lr_find.py, _sweep.py) ---
from optlab.lab._lr_find import LRFindResult as LRFindResult
from optlab.lab._lr_find import lr_find as lr_find
from optlab.lab._lr_find import lr_range_test as lr_range_test
from optlab.lab._lr_find import plot_lr_find as plot_lr_find
from optlab.lab._sweep import sweep as sweep
from optlab.lab._sweep_grid import kfold_indices as kfold_indices
from optlab.lab._sweep_result import SweepResult as SweepResult
from optlab.lab._sweep_result import plot_sweep as plot_sweep
from optlab.lab._sweep_result import refine as refine

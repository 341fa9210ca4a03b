"""The public API: each public package's names are pinned, and the higher layers use only them.

Adding or removing a public name is a deliberate edit of `PUBLIC` below. Everything under
`rpjax._src` is private.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

PUBLIC: dict[str, list[str]] = {
    "rpjax": [
        "ABSTAIN", "AffineFirst", "ApplyFn", "Certificates", "GAUSSIAN",
        "NoiseDistribution", "Prediction", "SampleSizeWarning", "SequentialCertificates",
        "SequentialCounts", "SmoothingConfig", "StopRule", "__version__", "always_label",
        "certify", "certify_sequential", "counting_program", "noise_samples", "predict",
        "sample_counts", "sequential_counts", "stats",
    ],
    "rpjax.stats": [
        "SampleSizeWarning", "betting_bound", "binomial_test_pvalue", "budget_table",
        "certified_radius", "check_sample_size", "clopper_pearson_lower",
        "clopper_pearson_upper", "decision_table", "max_radius", "min_samples_certify",
        "min_samples_predict", "mixture_bound", "sequential_test_table",
        "staged_budget_table", "staged_clopper_pearson", "staged_looks",
    ],
    "rpjax.privacy": [
        "AttributeSweep", "AuditRecord", "Budget", "BudgetExceededError", "Intervals",
        "LabelRelease", "LeakageBound", "READINGS", "ReleaseConfig", "RobustPrivacyRelease",
        "Secret", "advance", "advantage_bound", "answers_allowed", "ape_union",
        "attribute_intervals", "base_labels", "base_release", "binomial_tv",
        "certified_labels", "composed_advantage", "experiment_secret", "initial_state",
        "keyed_release", "outcome_probabilities", "p1_interval_from_counts",
        "predict_threshold_table", "rp_always_release", "rp_certify_release",
        "rp_predict_release",
    ],
    "rpjax.attacks": [
        "BrepConfig", "BrepResult", "MIFaceConfig", "MIFaceResult", "PCAPrior", "VAEPrior",
        "attack_success", "best_adaptive_advantage", "brep_mi", "fit_pca_prior",
        "fit_vae_prior", "mi_face_latent", "mi_face_pixels", "nearest_private_distance",
        "prior", "release_utility", "top_k_hits",
    ],
    "rpjax.baselines": [
        "DPSGDConfig", "DPSGDResult", "calibrate_noise_multiplier", "dp_grad_step",
        "dp_gradient", "dpsgd_epsilon", "fit_dpsgd", "output_noise_release",
        "random_abstain_release", "randomized_response_release",
    ],
    "rpjax.models": [
        "FaceCNN", "GradStep", "ResNet", "TabularMLP", "TrainConfig", "TrainResult",
        "accuracy", "as_apply_fn", "cifar_resnet", "fit_classifier", "imagenet_resnet",
        "optimize",
    ],
    "rpjax.data": [
        "DEFAULT_BMI_THRESHOLD", "FEATURES", "FaceData", "FaceSplit", "INSURANCE_SHA256",
        "InsuranceData", "OLIVETTI_SHA256", "faces_from_arrays", "load_faces_folder",
        "load_faces_npz", "load_insurance", "load_insurance_csv", "load_olivetti",
        "split_identities", "train_test_split",
    ],
    "rpjax.experiments": [
        "AttacksConfig", "AttacksResult", "DistillationConfig", "DistillationResult",
        "EXPERIMENTS", "Experiment", "Faces", "FrontierConfig", "FrontierResult",
        "InversionConfig", "InversionResult", "PRESETS", "REGISTRY", "RapConfig",
        "RapResult", "default_cache_dir", "prepare_faces", "reproduce", "run_experiment",
        "versions", "write_json",
    ],
}

# the layers above the engine, which must reach lower layers only through public names
HIGHER = ["rpjax/_src/attacks", "rpjax/_src/baselines", "rpjax/_src/experiments", "benchmarks"]


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_are_pinned(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package]), (
        f"{package}.__all__ changed; if deliberate, update PUBLIC in tests/test_api.py")
    assert len(set(module.__all__)) == len(module.__all__), f"{package}.__all__ repeats a name"
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ lists {name!r}, which is missing"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_live_in_one_place(package):
    """A public name that is not a module is defined under rpjax._src (the facade is thin)."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)
        if isinstance(value, types.ModuleType) or home is None:
            continue
        if home in ("typing", "collections.abc"):  # a type alias, e.g. Callable[...]
            continue
        assert home.startswith("rpjax._src"), (package, name, home)


def test_no_public_module_is_shadowed():
    """`import rpjax.X as m` gives a module for every public subpackage, and no function of
    `rpjax` shadows a module of the same name."""
    for package in PUBLIC:
        assert isinstance(importlib.import_module(package), types.ModuleType)
    import rpjax

    for name in rpjax.__all__:
        if not isinstance(getattr(rpjax, name), types.ModuleType):
            assert not (ROOT / "rpjax" / f"{name}.py").exists(), name
            assert not (ROOT / "rpjax" / name).is_dir(), name


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) for every `rpjax...` module a file imports, `from A import b` giving
    A.b when A.b is a module and A otherwise."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("rpjax")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("rpjax"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                try:
                    importlib.import_module(sub)
                    found.append((node.lineno, sub))
                except ImportError:
                    found.append((node.lineno, node.module))
    return sorted(set(found))


def _allowed(module: str, own: str | None) -> bool:
    if module in PUBLIC:
        return True
    if module in ("rpjax._src.validate", "rpjax._src.durable"):
        return True  # argument checks and atomic file writes: no engine state
    return own is not None and (module == own or module.startswith(own + "."))


@pytest.mark.parametrize("folder", HIGHER)
def test_higher_layers_import_only_public_modules(folder):
    own = folder.replace("/", ".") if folder.startswith("rpjax/") else None
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in _imports(path):
            if not _allowed(module, own):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offenders, "private imports from a higher layer:\n" + "\n".join(offenders)


def test_lower_layers_never_import_higher_ones():
    """The engine, stats, models, data and privacy know nothing of attacks, baselines or
    experiments."""
    higher = ("rpjax.attacks", "rpjax.baselines", "rpjax.experiments", "rpjax._src.attacks",
              "rpjax._src.baselines", "rpjax._src.experiments")
    lower = [p for p in (ROOT / "rpjax" / "_src").rglob("*.py")
             if not any(part in p.parts for part in ("attacks", "baselines", "experiments"))
             and p.name != "cli.py"]
    offenders = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in lower
                 for line, m in _imports(p) if m.startswith(higher)]
    assert not offenders, "\n".join(offenders)


@pytest.mark.slow
def test_every_test_marked_slow_by_name_exists():
    """`conftest.MARKED_SLOW` names the few tests that cannot carry `@pytest.mark.slow` yet
    (a doctest, tests edited on other branches) by node id: a renamed test would silently
    drop out of it (and run in the fast set), so every id must name a collected test."""
    import importlib.util
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("_root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    out = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider",
                          "-o", "addopts=--doctest-modules", "tests", "rpjax"],
                         capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    collected = {line.strip() for line in out.splitlines()}
    assert conftest.MARKED_SLOW <= collected, sorted(conftest.MARKED_SLOW - collected)

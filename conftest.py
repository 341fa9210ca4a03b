"""pytest: run the notebooks (nbmake) on their small settings; the kernels inherit this.

The notebooks are marked `slow` here (nbmake items cannot take decorators), so
`pytest -m "not slow"` skips them; the full run (`.ci/run`) executes them.

The notebooks reuse the models that `rpjax reproduce all --quick` (tests/test_reproduce.py)
trains: both cache trained models under `RPJAX_CACHE`, set below to one folder per test run
(shared by the pytest-xdist workers of the run, and by the notebook kernels, which inherit the
environment), and both are put in the xdist group "quick-models", which runs on one worker in
collection order: `tests/` first, then `notebooks/` (run with `--dist loadgroup`, as `.ci/run`
does; without it they still pass, training what the cache lacks).
"""

import os
import tempfile

import pytest

os.environ.setdefault("RPJAX_NOTEBOOK_QUICK", "1")
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"pid{os.getpid()}")
os.environ.setdefault("RPJAX_CACHE", os.path.join(tempfile.gettempdir(),
                                                  f"rpjax-test-models-{_RUN}"))

QUICK_MODELS = "quick-models"

# Tests that each took >= 1.8 s (call + setup) in `pytest -n 2 -m "not slow" --durations=0`
# on 2 cores, mostly XLA compiles of a model, a release or an attack loop. They are marked
# slow here so that `pytest -m "not slow"` stays an inner loop of about a minute; `.ci/run`
# runs them all. Several keep a cheaper sibling in the fast set (another parameter of the same
# test, a smaller model); the rest are checked only by the full run. The sequential
# certification tests listed here (>= 3 s each) keep their cheaper siblings in the fast set
# (lanes and slots, input order, bad inputs, the tables' statistics).
MARKED_SLOW = frozenset({
    "tests/test_runs.py::test_a_memory_mapped_data_set_streams_with_bounded_memory",
    "tests/test_runs.py::test_sigkill_then_resume_equals_an_uninterrupted_run[SIGKILL]",
    "tests/test_runs.py::test_sigkill_then_resume_equals_an_uninterrupted_run[SIGTERM]",
    "tests/test_runs.py::test_two_processes_with_jax_distributed_equal_one",
    "tests/test_runs.py::test_a_write_failure_is_one_line_and_the_run_resumes",
    "tests/test_runs.py::test_a_second_writer_on_the_same_out_is_refused",
    "tests/test_runs.py::test_a_seed_keeps_all_64_bits_as_in_the_api",
    "rpjax/_src/attacks/mi_face.py::rpjax._src.attacks.mi_face.mi_face_pixels",
    "tests/test_bad_inputs.py::test_bad_input[logits_inf_certify]",
    "tests/test_bad_inputs.py::test_bad_input[n_too_small_certify]",
    "tests/test_baselines.py::test_accountant_epsilon_falls_with_noise_and_calibration_hits_target",
    "tests/test_baselines.py::test_dp_grad_step_is_the_dp_gradient_of_the_indexed_batch",
    "tests/test_baselines.py::test_random_abstention_rate_and_output_noise",
    "tests/test_baselines.py::test_randomized_response_flips_at_the_configured_rate[0.9]",
    "tests/test_brep_mi.py::BrepTest::test_a_sweep_over_three_sigmas_compiles_the_attack_loop_once",
    "tests/test_brep_mi.py::BrepTest::test_walks_into_the_class_and_grows_its_radius",
    "tests/test_brep_mi.py::ReleaseTest::test_always_label_never_abstains",
    "tests/test_brep_mi.py::ReleaseTest::test_in_graph_predict_agrees_with_the_binomial_test_on_its_counts",
    "tests/test_certify.py::SemanticsTest::test_predict_abstention_controls_error",
    "tests/test_certify.py::SemanticsTest::test_too_small_n_warns",
    "tests/test_certify.py::SoundnessTest::test_radii_approach_the_truth_as_n_grows",
    "tests/test_certify.py::SoundnessTest::test_the_check_has_power",
    "tests/test_cli_and_data.py::test_console_script_help",
    "tests/test_engine.py::CacheAndProgramTest::test_invalid_column_leaves_finite_counts_unchanged",
    "tests/test_engine.py::CommonNoiseTest::test_affine_split_equals_the_plain_model",
    "tests/test_engine.py::CommonNoiseTest::test_does_not_depend_on_chunking_or_batching0",
    "tests/test_engine.py::CommonNoiseTest::test_does_not_depend_on_chunking_or_batching2",
    "tests/test_engine.py::CommonNoiseTest::test_inputs_share_their_noise",
    "tests/test_engine.py::CounterModeTest::test_flat_range_equals_per_sample_noise0",
    "tests/test_engine.py::CounterModeTest::test_flat_range_equals_per_sample_noise1",
    "tests/test_engine.py::CounterModeTest::test_flat_range_equals_per_sample_noise2",
    "tests/test_engine.py::DeterminismTest::test_remainder_is_masked",
    "tests/test_engine.py::NoiseDistributionTest::test_gaussian_transform_matches_jax_random_normal",
    "tests/test_engine.py::NoiseDistributionTest::test_noise_of_a_sample_does_not_depend_on_the_others",
    "tests/test_engine.py::NoiseDistributionTest::test_sample_noise_ks",
    "tests/test_engine.py::NoiseDistributionTest::test_samples_coordinates_and_examples_are_independent",
    "tests/test_harness_protocol.py::test_answer_keys_are_the_same_inside_jit[fresh]",
    "tests/test_harness_protocol.py::test_baseline_randomness_comes_from_the_secret_and_the_counter[output_noise]",
    "tests/test_harness_protocol.py::test_baseline_randomness_comes_from_the_secret_and_the_counter[randomized_response]",
    "tests/test_harness_protocol.py::test_brep_mi_gets_exactly_the_deployed_releases_answers[consistent]",
    "tests/test_leakage.py::OutcomeModelTest::test_engine_matches_outcome_probabilities0",
    "tests/test_mi_face.py::EngineNoiseTest::test_noise_samples_is_the_noise_sample_counts_adds",
    "tests/test_mi_face.py::RecoveryTest::test_recovers_each_class_template0",
    "tests/test_mi_face.py::SmoothingTest::test_tiny_sigma_matches_the_undefended_attack",
    "tests/test_mi_face.py::StoppingRuleTest::test_matches_a_reference_loop_per_target0",
    "tests/test_mi_face.py::StoppingRuleTest::test_matches_a_reference_loop_per_target1",
    "tests/test_mi_face.py::StoppingRuleTest::test_matches_a_reference_loop_per_target2",
    "tests/test_models.py::test_fit_classifier_is_the_loop_with_a_cross_entropy_step",
    "tests/test_models.py::test_im2col_first_layer_equals_nnx_conv[31-3]",
    "tests/test_models.py::test_im2col_first_layer_equals_nnx_conv[8-32]",
    "tests/test_models.py::test_models_split_into_an_affine_first_layer_and_the_rest[<lambda>-shape0]",
    "tests/test_models.py::test_models_split_into_an_affine_first_layer_and_the_rest[<lambda>-shape1]",
    "tests/test_prior.py::test_decode_is_jittable_vmappable_and_differentiable",
    "tests/test_prior.py::test_encode_inverts_unclipped_decode",
    "tests/test_rap.py::ThresholdModelTest::test_smoothed_radius_approaches_the_exact_one0",
    "tests/test_release.py::BudgetTest::test_advantage_budget_uses_the_worst_case_bound0",
    "tests/test_release.py::BudgetTest::test_alpha_budget_is_a_union_bound",
    "tests/test_release.py::NoiseModeTest::test_consistent_mode_exact_repeats_identical0",
    "tests/test_release.py::NoiseModeTest::test_fresh_mode_repeats_draw_new_noise_with_the_right_law",
    "tests/test_release.py::NoiseModeTest::test_traced_release_equals_deployed_release0",
    "tests/test_release.py::NoiseModeTest::test_traced_release_equals_deployed_release1",
    "tests/test_release.py::NoiseModeTest::test_traced_release_equals_deployed_release2",
    "tests/test_release.py::NoiseModeTest::test_traced_release_equals_deployed_release3",
    "tests/test_release.py::NoiseModeTest::test_traced_release_equals_deployed_release4",
    "tests/test_release.py::NoiseModeTest::test_traced_release_equals_deployed_release5",
    "tests/test_release.py::QuerierViewTest::test_different_secrets_give_different_noise",
    "tests/test_release.py::QuerierViewTest::test_label_only0",
    "tests/test_release.py::QuerierViewTest::test_secret_comes_from_the_os_and_is_not_printed",
    "tests/test_release.py::test_an_answer_costs_the_same_whatever_the_input[always_label]",
    "tests/test_release.py::test_an_answer_costs_the_same_whatever_the_input[certify]",
    "tests/test_release.py::test_predict_threshold_table_matches_the_binomial_test[257-0.05]",
    "tests/test_release.py::test_releases_differing_only_in_floats_share_fn",
    "tests/test_resnet.py::test_full_size_parameter_counts_match_the_reference_architectures",
    "tests/test_resnet.py::test_logits_shape_and_rows_are_independent[imagenet-shape1-7]",
    "tests/test_resnet.py::test_normalization_is_the_first_operation",
    "tests/test_resnet.py::test_zero_init_residual_blocks_start_as_their_shortcut",
    "tests/test_sequential.py::TestCertifySequential::test_adversarial_stopping_through_the_scheduler",
    "tests/test_sequential.py::TestCertifySequential::test_decision_uses_far_fewer_samples_than_fixed_n",
    "tests/test_sequential.py::TestCertifySequential::test_method_cohen_is_the_default_and_unchanged",
    "tests/test_sequential.py::TestCertifySequential::test_nan_logits_abstain_with_a_warning",
    "tests/test_sequential.py::TestCertifySequential::test_wrong_certificates_within_alpha[0.25]",
    "tests/test_sequential.py::TestCertifySequential::test_wrong_certificates_within_alpha[None]",
    "tests/test_sequential.py::TestScheduler::test_a_rule_that_never_stops_early_is_sample_counts",
    "tests/test_sequential.py::TestScheduler::test_counts_equal_the_fixed_n_kernel_over_the_same_samples",
    "tests/test_sequential.py::TestScheduler::test_results_do_not_depend_on_lanes_or_slots[None-None]",
})


def pytest_collection_modifyitems(config, items):
    """Marks every notebook item (a `.ipynb` file run by nbmake) slow and puts it in the
    "quick-models" xdist group; marks the tests of `MARKED_SLOW` slow."""
    for item in items:
        if item.nodeid in MARKED_SLOW:
            item.add_marker(pytest.mark.slow)
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group(QUICK_MODELS))

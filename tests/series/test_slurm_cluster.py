"""The test cluster itself: two nodes that run one job across both (what the other Slurm tests build on)."""

import pytest

pytestmark = pytest.mark.xdist_group("slurm")  # one test cluster per run: the Slurm tests share a worker (-n)


@pytest.mark.slow
def test_two_node_job_runs_on_both_nodes(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    job = slurm_cluster.cmd("sbatch", "--parsable", "-N2", "-o", str(out), "--wrap",
                            "srun bash -c 'echo $SLURMD_NODENAME $SLURM_NODEID'", cwd=tmp_path)
    st = slurm_cluster.wait(job, timeout=60)
    assert st["JobState"] == "COMPLETED", st
    assert sorted(out.read_text().split("\n")[:2]) == ["align-n1 0", "align-n2 1"]

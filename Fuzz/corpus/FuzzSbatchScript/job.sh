#!/bin/bash
#SBATCH --job-name=cologne_buffer_data_transfer
#SBATCH --output=/var/log/ccat/jobs/42/stdout.log
#SBATCH --error=/var/log/ccat/jobs/42/stderr.log
#SBATCH --comment=ccat-submit-token=7d6f3c9e-1111-4a5b-9c2d-000000000042
#SBATCH --signal=B:USR2@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --partition=transfer
#SBATCH --account=ccat
#SBATCH --qos=normal
#SBATCH --time=2:00:00
#SBATCH --cpus-per-task=4
#SBATCH --mem=4096M
#SBATCH --constraint=buffer&ib
#SBATCH --nodelist=node[01-02]
#SBATCH --clusters=cologne
#SBATCH --exclusive
#SBATCH --gres=none
#
# ccat-data-transfer batch job 42 for queue cologne_buffer_data_transfer (DATA_TRANSFER).
# Rendered from @TEMPLATE@: change the template (or an override of it), not this file.
# Every value below is shell-quoted by the renderer; only its own checked #SBATCH lines are inserted raw.
set -euo pipefail

# Site set-up before the runner starts (override setup.mustache in the daemon's template
# override directory to add e.g. "module load" lines or environment for the storage mounts).
export CCAT_DATABASE_URL='host=/run/ccat dbname=ops'
export CCAT_BATCH_JOB_ID='42'
export CCAT_QUEUE='cologne_buffer_data_transfer'
export CCAT_SCHEDULER='slurm'

# The runner replaces this shell, so Slurm's walltime warning (--signal=B:USR2@...) reaches it and
# it can release the operations it has not finished.
exec '/opt/ccat/bin/ccat-runner' run --batch-job '42'

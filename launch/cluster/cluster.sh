#!/usr/bin/env bash
# The cluster path: bring a GPU cluster up from cluster.yaml, run sweeps on it as Ray jobs, take it down.
#
#   launch/cluster/cluster.sh up                          # ray up cluster.yaml (fills in the AMI id first)
#   launch/cluster/cluster.sh submit CONFIG.yaml [--set KEY=VALUE ...]   # a sweep as a Ray job, on the cluster
#   launch/cluster/cluster.sh status                      # nodes, resources, autoscaler state
#   launch/cluster/cluster.sh jobs                        # submitted sweeps and their states
#   launch/cluster/cluster.sh logs JOB_ID                 # a sweep's console output
#   launch/cluster/cluster.sh dashboard                   # SSH tunnel to the dashboard (bound to 127.0.0.1 on the head)
#   launch/cluster/cluster.sh down                        # ray down cluster.yaml
#
# Needs: `pip install -e '.[cluster]'` on this machine (ray[default], boto3) and AWS credentials. Set STORAGE
# to shared storage every node reaches (default below) and CLUSTER to another cluster file if you have one.
# `up` writes the filled-in copy to .hindsight/cluster.yaml (the tracked file stays as it is).
set -euo pipefail
cd "$(dirname "$0")/../.."
SOURCE=${CLUSTER:-cluster.yaml}
CLUSTER=.hindsight/$(basename "$SOURCE")  # the filled-in copy every command below uses
STORAGE=${STORAGE:-s3://CHANGE-ME/hindsight}
RAY=${RAY:-ray}
export RAY_AUTH_MODE=token  # the cluster requires the token in ~/.ray/auth_token (shipped by `up`)

fill_in() {
  mkdir -p .hindsight
  region=$(python3 -c "import yaml,sys; print(yaml.safe_load(open('$SOURCE'))['provider']['region'])")
  ami=$(aws ec2 describe-images --region "$region" --owners amazon \
        --filters 'Name=name,Values=Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04)*' \
        --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
  [ -n "$ami" ] && [ "$ami" != "None" ] || { echo "error: no Deep Learning Base AMI found in $region" >&2; exit 2; }
  account=$(aws sts get-caller-identity --query Account --output text)
  sed -e "s/ami-FILL-IN/$ami/" -e "s/ACCOUNT-FILL-IN/$account/" "$SOURCE" > "$CLUSTER"
  echo "using $ami in $region, worker profile of account $account: $CLUSTER"
}

command=${1:-}
shift || true
case "$command" in
  up)
    [ -f ~/.ray/auth_token ] || { mkdir -p ~/.ray; python3 -c "import secrets; print(secrets.token_hex(32))" > ~/.ray/auth_token; chmod 600 ~/.ray/auth_token; }
    fill_in
    exec "$RAY" up -y "$CLUSTER" ;;
  submit)
    [ $# -ge 1 ] || { echo "usage: launch/cluster/cluster.sh submit CONFIG.yaml [--set KEY=VALUE ...]" >&2; exit 2; }
    [[ "$STORAGE" != *CHANGE-ME* ]] || { echo "error: set STORAGE to shared storage, e.g. STORAGE=s3://bucket/hindsight" >&2; exit 2; }
    # the job runs on the head, inside the cluster: --address auto joins it
    exec "$RAY" job submit --address http://127.0.0.1:8265 --working-dir . --no-wait -- \
      RAY_AUTH_MODE=token '$HOME/venv/bin/hindsight-ray' sweep "$@" --address auto --storage "$STORAGE" ;;
  status)
    exec "$RAY" exec "$CLUSTER" "~/venv/bin/ray status" ;;
  jobs)
    exec "$RAY" job list --address http://127.0.0.1:8265 ;;
  logs)
    exec "$RAY" job logs --address http://127.0.0.1:8265 --follow "$@" ;;
  dashboard)
    echo "dashboard at http://127.0.0.1:8265 while this runs (Ctrl-C to close the tunnel)"
    exec "$RAY" dashboard "$CLUSTER" ;;
  down)
    exec "$RAY" down -y "$CLUSTER" ;;
  *)
    sed -n '2,13p' "$0"; exit 2 ;;
esac

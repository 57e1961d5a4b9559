#!/usr/bin/env bash
# Validates the deployments without an AWS account or a Docker engine:
#   1. cfn-lint on every CloudFormation template: no errors, no warnings;
#   2. checkov on the templates (--framework cloudformation) and on deploy/Dockerfile: no failed
#      check (each suppression is written next to the resource, with its reason);
#   3. deploy/aws/check_tasks.py: every task definition's and compose service's variables are ones
#      ward reads, and `ward <command> --check` accepts each with exactly that environment.
#
#   deploy/aws/validate.sh WARD_BIN
#
# cfn-lint and checkov are installed from PyPI into $HOME/.cache/ward-deploy-venv when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

ward_bin="${1:?usage: deploy/aws/validate.sh WARD_BIN}"
venv="$HOME/.cache/ward-deploy-venv"
if ! "$venv/bin/python" -c 'import cfnlint, checkov, yaml' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet cfn-lint checkov
fi
echo "cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'), checkov $("$venv/bin/checkov" --version)"

templates=(deploy/aws/*.yaml)
status=0

echo "-- cfn-lint ${templates[*]}"
if "$venv/bin/cfn-lint" "${templates[@]}"; then
  echo "cfn-lint: no errors or warnings"
else
  status=1
fi

# --skip-download: no calls to the vendor's platform; the checks ship with the package.
echo "-- checkov (cloudformation)"
"$venv/bin/checkov" -d deploy/aws --framework cloudformation --compact --quiet --skip-download ||
  status=1

# CKV_DOCKER_2 asks for a HEALTHCHECK in the image: ECS ignores one (the task definition's health
# check is what runs, see ward.yaml) and compose defines its own, so the image leaves it out.
echo "-- checkov (dockerfile)"
"$venv/bin/checkov" -f deploy/Dockerfile --framework dockerfile --compact --quiet --skip-download \
  --skip-check CKV_DOCKER_2 || status=1

echo "-- task definitions against $ward_bin"
"$venv/bin/python" deploy/aws/check_tasks.py "$ward_bin" || status=1

exit "$status"

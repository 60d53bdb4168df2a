#!/usr/bin/env bash
# Deploys the CDK stack to LocalStack (docker-compose.localstack.yml), the way cdklocal would:
# every AWS SDK call of the CDK CLI goes to LocalStack through AWS_ENDPOINT_URL.
#
#   docker compose -f docker-compose.localstack.yml up -d
#   bash infra/deploy-localstack.sh [extra cdk deploy arguments]
#
# Kafka is the compose broker, consumed as a self-managed cluster (LocalStack does not check
# the VPC ids; they only satisfy the stack's "no auth needs a VPC" rule). Uses `cdklocal` when
# it is installed, else the plain CDK CLI with endpoint variables.
#
# What runs depends on the plan of LOCALSTACK_AUTH_TOKEN (docs/deploy.md, "Try it on LocalStack"):
# the whole stack needs Pro (self-managed Kafka trigger, CloudFront); Base stops at CloudFront.
# Even on Pro the deployed page names AWS host names and cannot connect: for a dashboard that
# runs, use `npm start`.
set -euo pipefail
cd "$(dirname "$0")/.."

export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://localhost:4566}"
# S3 needs virtual-host style names that resolve to LocalStack.
export AWS_ENDPOINT_URL_S3="${AWS_ENDPOINT_URL_S3:-http://s3.localhost.localstack.cloud:4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export CDK_DEFAULT_ACCOUNT="${CDK_DEFAULT_ACCOUNT:-000000000000}"
export CDK_DEFAULT_REGION="$AWS_REGION"

if ! curl -fsS "$AWS_ENDPOINT_URL/_localstack/health" >/dev/null; then
  echo "LocalStack is not answering at $AWS_ENDPOINT_URL." >&2
  echo "Start it first: docker compose -f docker-compose.localstack.yml up -d" >&2
  exit 1
fi

echo "LocalStack at $AWS_ENDPOINT_URL. This deploy needs the Pro plan (see docs/deploy.md); the deployed" >&2
echo "page cannot connect on LocalStack (AWS host names): use 'npm start' for the end-to-end loop." >&2

if [ ! -f frontend/dist/index.html ]; then
  npm run build:frontend
fi

if command -v cdklocal >/dev/null 2>&1; then
  CDK=(cdklocal)
else
  CDK=(npx --no-install cdk)
fi

CONTEXT=(
  -c kafkaSource=self-managed
  -c kafkaBootstrapServers=kafka:29092
  -c kafkaAuth=none
  -c kafkaVpcId=vpc-localstack
  -c kafkaSubnetIds=subnet-localstack
  -c kafkaSecurityGroupId=sg-localstack
  -c kafkaStartingPosition=TRIM_HORIZON
  -c logRetentionDays=1
  # LocalStack keeps no account-wide API Gateway settings worth protecting.
  -c apiGatewayLogsRole=true
)

"${CDK[@]}" bootstrap "aws://$CDK_DEFAULT_ACCOUNT/$AWS_REGION" "${CONTEXT[@]}"
"${CDK[@]}" deploy --require-approval never --outputs-file cdk.out/localstack-outputs.json "${CONTEXT[@]}" "$@"
echo "Outputs written to cdk.out/localstack-outputs.json"

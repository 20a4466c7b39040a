"""AWS calls (STS, EKS) through boto3, which honours AWS_ENDPOINT_URL natively."""

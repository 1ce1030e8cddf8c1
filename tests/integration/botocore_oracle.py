"""Ask botocore what it makes of the AWS shared files and the environment.

Run as a script by whichever python3 has the botocore to ask (Debian's, or a
newer one for what Debian's 1.29 does not know), in the environment the
daemon gets: one JSON request as argv[1], one JSON answer on stdout.

  {"op": "version"}                        -> {"version"}
  {"op": "profiles"}                       -> {"profiles": [...]}
  {"op": "region", "profile"}              -> {"region"}
  {"op": "endpoint", "profile"}            -> {"endpoint", "region"} of an sts client
  {"op": "credentials", "profile", "sts_url", "ca"}
      -> {"access_key"} of the credentials botocore resolves for the profile
         (an AssumeRole chain runs against sts_url), or {"error", "message"}

Standalone (no test imports): it runs under other interpreters.
"""

import json
import sys

import botocore
import botocore.session


def session(request):
    return botocore.session.Session(profile=request.get("profile"))


def sts_to(s, url, ca):
    """Every sts client the session makes (AssumeRole's too) goes to url,
    unless configured otherwise (botocore 1.29 has no way to configure it)."""
    create = s.create_client

    def create_client(service, *args, **kwargs):
        if service == "sts" and kwargs.get("endpoint_url") is None:
            kwargs["endpoint_url"] = url
        kwargs["verify"] = ca
        return create(service, *args, **kwargs)

    s.create_client = create_client


def main():
    request = json.loads(sys.argv[1])
    op = request["op"]
    if op == "version":
        return {"version": botocore.__version__}
    if op == "profiles":
        return {"profiles": botocore.session.Session().available_profiles}
    s = session(request)
    if op == "region":
        return {"region": s.get_config_variable("region")}
    if op == "endpoint":
        client = s.create_client("sts", aws_access_key_id="AKIAORACLEORACLE0000",
                                 aws_secret_access_key="oracle")
        return {"endpoint": client.meta.endpoint_url, "region": client.meta.region_name}
    if op == "credentials":
        sts_to(s, request["sts_url"], request["ca"])
        try:
            creds = s.get_credentials()
            if creds is None:
                return {"error": "NoCredentials", "message": "no credentials"}
            return {"access_key": creds.get_frozen_credentials().access_key}
        except Exception as e:  # the class is the answer
            return {"error": type(e).__name__, "message": str(e)}
    raise SystemExit(f"unknown op {op!r}")


if __name__ == "__main__":
    print(json.dumps(main()))

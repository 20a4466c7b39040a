"""The plain-dict botocore model loader reads the same data botocore's own loader does."""

import json

import botocore.loaders
import pytest

from ambient_tui.aws import model_loader


@pytest.mark.parametrize("name", ["endpoints", "partitions", "sts/2011-06-15/service-2",
                                  "eks/2017-11-01/service-2", "eks/2017-11-01/endpoint-rule-set-1"])
def test_same_data_as_botocore(name):
    base = botocore.loaders.Loader.BUILTIN_DATA_PATH + "/" + name
    ours = model_loader.PlainJSONFileLoader().load_file(base)
    theirs = botocore.loaders.JSONFileLoader().load_file(base)
    assert ours is not None and type(ours) is dict
    assert ours == theirs
    # Same order too (dicts keep it, as OrderedDict did): compare serialised.
    assert json.dumps(ours) == json.dumps(theirs)


def test_missing_file():
    loader = model_loader.PlainJSONFileLoader()
    assert loader.load_file("/nonexistent/endpoints") is None
    assert not loader.exists("/nonexistent/endpoints")
    assert loader.exists(botocore.loaders.Loader.BUILTIN_DATA_PATH + "/eks/2017-11-01/service-2")


def test_session_uses_it_and_honours_aws_data_path(tmp_path, monkeypatch):
    # A model override in AWS_DATA_PATH, as botocore documents: a copy of STS with a new doc string.
    src = botocore.loaders.JSONFileLoader().load_file(
        botocore.loaders.Loader.BUILTIN_DATA_PATH + "/sts/2011-06-15/service-2")
    src["documentation"] = "overridden from AWS_DATA_PATH"
    d = tmp_path / "sts" / "2011-06-15"
    d.mkdir(parents=True)
    (d / "service-2.json").write_text(json.dumps(src))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    session = model_loader.new_session()
    loader = session._session.get_component("data_loader")
    assert isinstance(loader.file_loader, model_loader.PlainJSONFileLoader)
    client = session.client("sts", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="y")
    assert client.meta.service_model.documentation == "overridden from AWS_DATA_PATH"
    assert "GetCallerIdentity" in client.meta.service_model.operation_names
    assert client.meta.endpoint_url == "https://sts.us-west-2.amazonaws.com"
    eks = session.client("eks", region_name="eu-central-1", aws_access_key_id="x", aws_secret_access_key="y")
    assert "UpdateAddon" in eks.meta.service_model.operation_names
    assert eks.meta.endpoint_url == "https://eks.eu-central-1.amazonaws.com"

"""A boto3 session whose botocore models are parsed into plain dicts.

botocore parses its JSON data files with object_pairs_hook=OrderedDict. For endpoints.json
(1.2 MB, read by every new session's first client) that takes ~2.5x as long as plain dicts,
and json.loads holds the GIL for all of it: ~60 ms in which no other preflight check can run.
Dicts keep insertion order, and botocore reads these models only as mappings, so the data is
the same (a unit test compares it). The loader is handed over through botocore's public
Loader(file_loader=...) and Session.register_component; search paths are botocore's own.
"""

from __future__ import annotations

import gzip
import json
import os

# The extensions botocore's own JSONFileLoader tries, in its order.
_OPENERS = ((".json", open), (".json.gz", gzip.open))


class PlainJSONFileLoader:
    """botocore's file-loader interface: exists(path) and load_file(path), path without extension."""

    def exists(self, file_path: str) -> bool:
        return any(os.path.isfile(file_path + ext) for ext, _ in _OPENERS)

    def load_file(self, file_path: str):
        for ext, opener in _OPENERS:
            full = file_path + ext
            if os.path.isfile(full):
                with opener(full, "rb") as fp:
                    return json.loads(fp.read().decode("utf-8"))
        return None


def new_session(profile: str | None = None):
    """A boto3 Session as boto3.session.Session() makes it, with the plain-dict model loader
    (and `profile` when given, as Session(profile_name=...))."""
    import boto3
    import botocore.loaders
    import botocore.session

    core = botocore.session.get_session()
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore reads it
    extra = None
    if data_path:
        extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
    core.register_component("data_loader", botocore.loaders.Loader(
        extra_search_paths=extra, file_loader=PlainJSONFileLoader()))
    return boto3.session.Session(botocore_session=core, profile_name=profile)

"""``package``: files earlier jobs made, chosen by name, as one ZIP with a manifest.

Every file is an asset id (resolved by the gateway into ``attached``, as uploads are) under the
name it has in the ZIP (``image_003`` becomes ``image_003.png``). The ``package`` step builds the
ZIP (``bundle.zip``: a manifest first, with each file's kind, size and SHA-256); the ZIP and
every file in it download through signed links, as any job's files do. The anime studio's
episode package (``POST …/episodes/{id}/package``) writes these inputs from the episode's
package config.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from atelier_contracts.events import StepSpec
from atelier_contracts.kinds.base import AssetId, BaseInput, InvalidInput, Issue, JobKind, attached_upload

BUNDLE_STEP = "package"


class PackedFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    """Its name in the ZIP, without the extension (which comes from its type)."""
    file: AssetId


class PackageInput(BaseInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    files: Annotated[list[PackedFile], msgspec.Meta(min_length=1, max_length=1000)]
    about: dict[str, Any] = {}
    """What the manifest says the package is (e.g. the episode and the kinds asked for)."""


def check(package: PackageInput) -> None:
    seen: set[str] = {BUNDLE_STEP}
    for n, packed in enumerate(package.files):
        if packed.name in seen:
            message = f"{packed.name!r} is taken" if packed.name == BUNDLE_STEP else f"{packed.name!r} twice"
            raise InvalidInput(
                "validation_failed", [Issue(loc=("files", n, "name"), msg=message, type="value_error")]
            )
        seen.add(packed.name)


def plan(package: PackageInput) -> tuple[StepSpec, ...]:
    given = tuple(
        StepSpec(name=p.name, capability="upload", given=(attached_upload(package, p.file, "files"),))
        for p in package.files
    )
    bundle = StepSpec(
        name=BUNDLE_STEP,
        capability="bundle.zip",
        needs=tuple(s.name for s in given),
        params={"request": package.about},
    )
    return (*given, bundle)


KIND = JobKind(
    name="package",
    description="Files earlier jobs made, each under a name, as one ZIP with a manifest "
    "(the anime studio's episode packages).",
    input_type=PackageInput,
    plan=plan,
    check=check,
    uploads=lambda package: tuple(dict.fromkeys(p.file for p in package.files)),
    deadline_s=1800.0,
    example={
        "files": [
            {"name": "episode", "file": "ast_0123456789abcdef01234567"},
            {"name": "image_001", "file": "ast_89abcdef0123456789abcdef"},
        ]
    },
)

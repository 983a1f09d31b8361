"""An attempt finds exactly its node version's pinned resource files in its work
directory: copied from storage before the command starts (a registered preparation step,
apps.instances.preparations), each checked against the SHA-256 recorded at upload."""

import hashlib
import os

from apps.instances.preparations import PreparationFailed, PrepareContext

from .selectors import resource_pins, resource_version_open

CHUNK = 1024 * 1024


def resources_copy(context: PrepareContext) -> None:
    for pin in resource_pins(context.instance.version):
        version = pin.resource_version
        what = f"resource {pin.name!r} v{pin.number}"
        if version is None:
            raise PreparationFailed(
                f"{what} was deleted after this node version was published; upload it again "
                "and publish the node",
                retryable=False,
            )
        target = context.workdir / pin.name
        digest = hashlib.sha256()
        try:
            with resource_version_open(version) as source, open(target, "wb") as copy:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    copy.write(chunk)
                    if context.tick():
                        raise PreparationFailed(
                            f"stopped while {what} was copied", retryable=False, outcome="stopped"
                        )
        except FileNotFoundError as exc:
            raise PreparationFailed(
                f"{what} is missing from storage ({version.file.name}): {exc}", retryable=False
            ) from exc
        except OSError as exc:
            raise PreparationFailed(f"{what} could not be read from storage: {exc}") from exc
        if digest.hexdigest() != version.sha256:
            raise PreparationFailed(
                f"{what} in storage ({version.file.name}) is not the file uploaded: its "
                f"SHA-256 is {digest.hexdigest()}, not {version.sha256}",
                retryable=False,
            )
        # Readable by whoever runs the command (OPSCENTER_RUN_AS gets the directory).
        os.chmod(target, 0o644)
        context.line(f"{what} ({version.size_bytes} bytes) is in the work directory")

import pytest


@pytest.fixture(autouse=True)
def storage_dir(settings, tmp_path):
    """Each test stores its files in a directory of its own."""
    location = tmp_path / "storage"
    settings.OPSCENTER_STORAGE_DIR = location
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "file_permissions_mode": 0o644},
        },
    }
    return location

def test_migrations_create_default_resource_group(db):
    from apps.configuration.models import ResourceGroup

    assert ResourceGroup.objects.filter(name="default").exists()


def test_api_docs_render(client):
    response = client.get("/api/docs")
    assert response.status_code == 200


def test_api_requires_authentication(client):
    response = client.get("/api/projects")
    assert response.status_code in (401, 404)

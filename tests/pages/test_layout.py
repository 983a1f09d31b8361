import pytest
from django.urls import reverse

from apps.projects.models import Membership, Project


def test_anonymous_pages_redirect_to_login(client, db):
    for url in ["/instances/", "/instances/1/", "/instances/1/live", "/instances/1/log?attempt=1"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next=")


def test_login_page_renders_form(client, db):
    response = client.get("/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html
    assert "vendor/htmx/htmx.min.js" in html


def test_login_with_wrong_password_says_so(client, users):
    response = client.post("/login/", {"username": "olga", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_login_then_lands_on_instances(client, users):
    response = client.post("/login/", {"username": "olga", "password": "pw-olga-123"})
    assert response.status_code == 302
    assert response["Location"] == reverse("instances:list")
    assert client.get("/instances/").status_code == 200


def test_logout_is_a_post_form(client, users):
    client.force_login(users["olga"])
    html = client.get("/instances/").content.decode()
    assert f'method="post" action="{reverse("logout")}"' in html
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get("/instances/").status_code == 302


def test_layout_shows_navigation_and_user(client, users, project):
    client.force_login(users["olga"])
    html = client.get("/instances/").content.decode()
    assert 'class="mainnav"' in html
    assert 'href="/instances/" class="active"' in html
    assert "olga" in html


@pytest.fixture
def other_project(users):
    other = Project.objects.create(code="beta", name="Beta Lake", timezone="UTC")
    Membership.objects.create(project=other, user=users["alice"], role="viewer")
    return other


def test_project_switcher_lists_only_visible_projects(client, users, project, other_project):
    client.force_login(users["olga"])
    html = client.get("/instances/").content.decode()
    assert '<option value="acme"' in html
    assert '<option value="beta"' not in html
    assert "All projects" in html


def test_project_switcher_remembers_choice_and_all_projects_clears_it(
    client, users, project, other_project
):
    client.force_login(users["alice"])
    html = client.get("/instances/?project=beta").content.decode()
    assert '<option value="beta" selected>' in html
    # Kept in the session for the next page.
    html = client.get("/instances/").content.decode()
    assert '<option value="beta" selected>' in html
    html = client.get("/instances/?project=").content.decode()
    assert '<option value="" selected>All projects</option>' in html

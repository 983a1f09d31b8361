from apps.core.errors import NotFound, PermissionDenied

from .selectors import has_role, role_of


def require_role(user, project, role: str) -> None:
    """Raise unless `user` holds `role` (or a higher one) in `project`."""
    held = role_of(user, project)
    if held is None:
        # Nobody learns that a project they are not a member of exists.
        raise NotFound(f"project {project.code!r} not found")
    if not has_role(user, project, role):
        raise PermissionDenied(
            f"this needs the {role} role in project {project.code!r}; you are {held}"
        )

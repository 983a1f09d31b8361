from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    DEVELOPER = "developer", "Developer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


# Each role can do everything the roles before it can.
ROLE_RANK = {Role.VIEWER: 1, Role.DEVELOPER: 2, Role.OPERATOR: 3, Role.ADMIN: 4}


class EnvMode(models.TextChoices):
    BASIC = "basic", "Basic (prod only)"
    DEV_PROD = "dev_prod", "Dev and prod"


class GenerationMode(models.TextChoices):
    T_PLUS_1 = "t_plus_1", "T+1 (nightly, for the next day)"
    IMMEDIATE = "immediate", "Immediate (also the rest of today)"


class DatasourceKind(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    SQLITE = "sqlite", "SQLite"

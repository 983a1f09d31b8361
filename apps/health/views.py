"""The cluster health page: thin over apps.health.selectors."""

from django.contrib.auth.decorators import login_required

from apps.core.htmx import render_page_or_partial

from .selectors import health_get

POLL_SECONDS = 10


@login_required
def health(request):
    data = health_get()
    context = {
        "health": data,
        "poll_seconds": POLL_SECONDS,
        # Task errors may carry any project's data: their text is the superuser's.
        "show_errors": request.user.is_superuser,
    }
    return render_page_or_partial(
        request, page="health/health.html", partial="health/_health.html", context=context
    )

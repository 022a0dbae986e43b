import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .models import Note


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from Django!", content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def notes(request: HttpRequest) -> HttpResponse:
    """GET: all notes as JSON. POST: create one from a form field or a JSON body `text`."""
    if request.method == "GET":
        found = [{"id": n.pk, "text": n.text} for n in Note.objects.order_by("pk")]
        return JsonResponse({"notes": found})
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": "body is not valid JSON"}, status=400)
        text = data.get("text") if isinstance(data, dict) else None
    else:
        text = request.POST.get("text")
    if not isinstance(text, str) or not text:
        return JsonResponse({"error": "a non-empty 'text' is required"}, status=400)
    note = Note.objects.create(text=text)
    return JsonResponse({"id": note.pk, "text": note.text}, status=201)

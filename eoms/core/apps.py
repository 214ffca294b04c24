from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "eoms.core"
    label = "core"
    verbose_name = "EOMS core"

    def ready(self):
        from django.conf import settings

        from . import periodic
        from .audit import write_checkpoint

        # The audit chain's head, appended to the checkpoint file when it moved (idempotent).
        periodic.register("core.audit_checkpoint", write_checkpoint, every=settings.AUDIT_CHECKPOINT_SECONDS)

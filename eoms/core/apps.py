from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "eoms.core"
    label = "core"
    verbose_name = "EOMS core"

    def ready(self):
        from django.conf import settings

        from . import periodic
        from .audit import seal, write_checkpoint

        # Audit entries sealed into the chain (decision 0016): the relay does it after each pass; this
        # is the backstop where no relay runs (`eoms tick` from cron, or `eoms beat` + `eoms worker`).
        periodic.register("core.audit_seal", seal, every=60)
        # The audit chain's head, appended to the checkpoint file when it moved (idempotent).
        periodic.register("core.audit_checkpoint", write_checkpoint, every=settings.AUDIT_CHECKPOINT_SECONDS)

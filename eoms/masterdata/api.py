from ninja import Router

router = Router(tags=["master data"])

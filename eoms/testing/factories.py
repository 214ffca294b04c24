"""factory_boy factories shared by every context's tests (and by nothing else)."""

from decimal import Decimal

import factory
from django.contrib.auth.models import Group

from eoms.accounts.models import OrgUnit, ProjectMembership, User
from eoms.accounts.roles import ProjectRole
from eoms.masterdata.models import Customer, Project, ProjectType, Region, Supplier

# Valid unified social credit codes (GB 32100-2015 check character), for customers and suppliers.
_USCC_BASES = ["91110000", "91310000", "91440300", "91320500", "91510100", "91420100", "91610100"]


def valid_uscc(n: int) -> str:
    from stdnum.cn import uscc

    base = f"{_USCC_BASES[n % len(_USCC_BASES)]}{n:09d}"[:17]
    return base + uscc.calc_check_digit(base)


class OrgUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrgUnit

    code = factory.Sequence(lambda n: f"OU{n:03d}")
    name = factory.Sequence(lambda n: f"工程部{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.Sequence(lambda n: f"用户{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pass-word-123")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.set([Group.objects.get_or_create(name=r)[0] for r in extracted])


class ProjectTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProjectType
        django_get_or_create = ("code",)

    code = "municipal_road"
    name = "市政道路"
    name_en = "Municipal roads"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"城市建设投资有限公司{n}")
    uscc = factory.Sequence(valid_uscc)
    region = Region.EAST
    grade = "B"


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    code = factory.Sequence(lambda n: f"PRJ-{n:04d}")
    name = factory.Sequence(lambda n: f"滨江大道改造工程{n}")
    customer = factory.SubFactory(CustomerFactory)
    project_type = factory.SubFactory(ProjectTypeFactory)
    region = Region.EAST
    province = "上海市"
    city = "上海市"
    latitude = Decimal("31.230416")
    longitude = Decimal("121.473701")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProjectMembership

    user = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = ProjectRole.VIEWER


class SupplierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Supplier

    name = factory.Sequence(lambda n: f"建材供应有限公司{n}")
    uscc = factory.Sequence(lambda n: valid_uscc(n + 5000))
    region = Region.EAST

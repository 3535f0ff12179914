"""The base of the web app's model forms: an operator uses only their partitions and sees only their objects."""

from django import forms

from accesscontrol.models import Partition
from accesscontrol.permissions import ALL, allowed_partitions, permission_name, restrict


class OperatorModelForm(forms.ModelForm):
    """A model form for ``operator``: related choices are the objects they may see, the partition one they may use.

    The model's ``clean()`` and unique checks run as in every model form, so the
    rules live in the model and reach the operator as field errors.
    """

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.operator = operator
        for name, field in self.fields.items():
            if isinstance(field, forms.ModelChoiceField) and name != "partition":
                field.queryset = restrict(field.queryset, operator, "view")
        if "partition" in self.fields:
            action = "add" if self.instance._state.adding else "change"
            allowed = allowed_partitions(operator, permission_name(self._meta.model, action))
            partitions = Partition.objects.all() if allowed is ALL else Partition.objects.filter(pk__in=allowed)
            field = self.fields["partition"]
            field.queryset = partitions
            field.empty_label = None
            if self.instance._state.adding and not self.is_bound:
                general = partitions.filter(name=Partition.GENERAL).first() or partitions.first()
                field.initial = general.pk if general else None


def time_input(**attrs) -> forms.TimeInput:
    return forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 60, **attrs})

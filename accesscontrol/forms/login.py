"""Forms of the login pages and the operator's own account page."""

from django import forms

from accesscontrol.twofactor import clean_code


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(
        max_length=1024, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs["autofocus"] = True


class CodeForm(forms.Form):
    """A code from the authenticator app (six digits) or a backup code (eight letters and digits)."""

    code = forms.CharField(
        label="Code",
        max_length=20,
        help_text="The six-digit code your authenticator app shows, or one of your backup codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )

    def __init__(self, *args, autofocus: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if autofocus:
            self.fields["code"].widget.attrs["autofocus"] = True

    def clean_code(self):
        code = clean_code(self.cleaned_data["code"])
        if not code.isalnum() or len(code) not in (6, 8):
            raise forms.ValidationError("Enter the six-digit code from your app or an eight-character backup code.")
        return code


class EnrolmentForm(CodeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["code"]
        field.label = "Code from your app"
        field.help_text = "The six-digit code your authenticator app shows now for Space."
        field.widget.attrs["inputmode"] = "numeric"

    def clean_code(self):
        code = clean_code(self.cleaned_data["code"])
        if not (code.isdigit() and len(code) == 6):
            raise forms.ValidationError("Enter the six digits your app shows.")
        return code

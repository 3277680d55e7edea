"""An operator control that cannot be done as asked: the status an API answers, and why."""


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

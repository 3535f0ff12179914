"""The front desk's pages (hotel.views): the room grid, check-in, copy, move, departure, check-out."""

from django.urls import path

from hotel import views as front_desk

urlpatterns = [
    path("front-desk/", front_desk.FrontDeskView.as_view(), name="front_desk"),
    path("front-desk/encoder/", front_desk.DeskEncoderView.as_view(), name="front_desk_encoder"),
    path("front-desk/rooms/<int:pk>/", front_desk.RoomView.as_view(), name="front_desk_room"),
    path("front-desk/rooms/<int:pk>/check-in/", front_desk.CheckInView.as_view(), name="front_desk_check_in"),
    path("front-desk/rooms/<int:pk>/copy/", front_desk.CopyKeyView.as_view(), name="front_desk_copy"),
    path("front-desk/rooms/<int:pk>/move/", front_desk.MoveView.as_view(), name="front_desk_move"),
    path("front-desk/rooms/<int:pk>/departure/", front_desk.DepartureView.as_view(), name="front_desk_departure"),
    path("front-desk/rooms/<int:pk>/check-out/", front_desk.CheckOutView.as_view(), name="front_desk_check_out"),
]

"""The hotel's REST API (/api/v1/hotel/): the operations every PMS interface also calls."""

from django.urls import path

from hotel.api import views as hotel

urlpatterns = [
    path("hotel/check-in/", hotel.CheckInView.as_view(), name="hotel-check-in"),
    path("hotel/copy/", hotel.CopyView.as_view(), name="hotel-copy"),
    path("hotel/modify/", hotel.ModifyView.as_view(), name="hotel-modify"),
    path("hotel/check-out/", hotel.CheckOutView.as_view(), name="hotel-check-out"),
    path("hotel/read-key/", hotel.ReadKeyView.as_view(), name="hotel-read-key"),
    path("hotel/rooms/", hotel.RoomListView.as_view(), name="hotel-rooms"),
    path("hotel/stays/", hotel.StayListView.as_view(), name="hotel-stays"),
]
